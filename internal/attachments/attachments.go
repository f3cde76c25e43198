// Package attachments decides what an uploaded file is and makes it safe
// to keep and serve: the type comes from the bytes, never from the name or
// the type the uploader declared; only a short list of types is taken;
// JPEG and PNG images are re-encoded, which drops their metadata (a
// phone's photo carries where it was taken).
package attachments

import (
	"archive/zip"
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"image/png"
	"net/http"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	_ "image/gif" // registers GIF for image.DecodeConfig
)

// Types that are taken, as they are served.
const (
	PNG  = "image/png"
	JPEG = "image/jpeg"
	GIF  = "image/gif"
	PDF  = "application/pdf"
	Text = "text/plain; charset=utf-8"
	DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
	ODT  = "application/vnd.oasis.opendocument.text"
	ODS  = "application/vnd.oasis.opendocument.spreadsheet"
)

// ErrTypeNotAllowed refuses a file of a type that is not taken (SVG and
// HTML among them: they could run script from Parley's origin).
var ErrTypeNotAllowed = errors.New("attachments: this kind of file is not accepted; send an image (PNG, JPEG, GIF), a PDF, a text file or an office document")

// MaxPixels bounds an image's size in pixels (40 megapixels: more than
// any phone's photo).
const MaxPixels = 40_000_000

// ErrImageTooLarge refuses an image of more than MaxPixels.
var ErrImageTooLarge = errors.New("attachments: the image has too many pixels (40 megapixels at most)")

// Inline reports whether a type is shown in the page (images), rather
// than offered for download.
func Inline(t string) bool { return t == PNG || t == JPEG || t == GIF }

// Sniff decides a file's type from its bytes.
func Sniff(data []byte) (string, error) {
	switch t := http.DetectContentType(data); {
	case t == "image/png", t == "image/jpeg", t == "image/gif":
		cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			return "", ErrTypeNotAllowed // a header and no image
		}
		// A few kilobytes can claim billions of pixels, which decoding
		// (Clean) would allocate: a decompression bomb.
		if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
			return "", ErrImageTooLarge
		}
		return t, nil
	case t == "application/pdf":
		return PDF, nil
	case t == "application/zip":
		return office(data)
	case strings.HasPrefix(t, "text/plain") && utf8.Valid(data) && !markup(data):
		return Text, nil
	}
	return "", ErrTypeNotAllowed
}

// markup reports whether text starts like a tag: an SVG or HTML page
// that the sniffer let through as plain text is refused all the same.
func markup(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n\ufeff")
	return len(t) > 0 && t[0] == '<'
}

// office tells the office documents apart from other zip files by their
// parts.
func office(data []byte) (string, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "", ErrTypeNotAllowed
	}
	names := map[string]bool{}
	for _, f := range zr.File {
		names[f.Name] = true
		if f.Name == "mimetype" {
			rc, err := f.Open()
			if err != nil {
				return "", ErrTypeNotAllowed
			}
			b := make([]byte, 64)
			n, _ := rc.Read(b)
			rc.Close()
			switch string(b[:n]) {
			case ODT:
				return ODT, nil
			case ODS:
				return ODS, nil
			}
		}
	}
	if !names["[Content_Types].xml"] {
		return "", ErrTypeNotAllowed
	}
	for name := range names {
		switch {
		case strings.HasPrefix(name, "word/"):
			return DOCX, nil
		case strings.HasPrefix(name, "xl/"):
			return XLSX, nil
		case strings.HasPrefix(name, "ppt/"):
			return PPTX, nil
		}
	}
	return "", ErrTypeNotAllowed
}

// Clean returns what is kept of a file of type t: JPEG and PNG images
// re-encoded, without their metadata; anything else as it came.
func Clean(t string, data []byte) ([]byte, error) {
	var buf bytes.Buffer
	switch t {
	case JPEG:
		img, err := jpeg.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, ErrTypeNotAllowed
		}
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
			return nil, err
		}
	case PNG:
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, ErrTypeNotAllowed
		}
		if err := png.Encode(&buf, img); err != nil {
			return nil, err
		}
	default:
		return data, nil
	}
	return buf.Bytes(), nil
}

// extensions are the names' endings that go with each type.
var extensions = map[string]string{PNG: ".png", JPEG: ".jpg", GIF: ".gif", PDF: ".pdf", Text: ".txt",
	DOCX: ".docx", XLSX: ".xlsx", PPTX: ".pptx", ODT: ".odt", ODS: ".ods"}

// Name is the file's name as it is kept and offered: the base of what the
// uploader sent, printable, at most 120 characters, ending as its type
// does (a PDF named photo.png becomes photo.png.pdf).
func Name(raw, t string) string {
	name := path.Base(strings.ReplaceAll(raw, "\\", "/"))
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '"' || r == '/' || r == utf8.RuneError {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "" || name == "." || name == "/" {
		name = "file"
	}
	if r := []rune(name); len(r) > 120 {
		name = string(r[:120])
	}
	ext := extensions[t]
	if !strings.HasSuffix(strings.ToLower(name), ext) && !(t == JPEG && strings.HasSuffix(strings.ToLower(name), ".jpeg")) {
		name += ext
	}
	return name
}
