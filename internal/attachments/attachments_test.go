package attachments

import (
	"archive/zip"
	"bytes"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"
)

func pngBytes(t *testing.T, withText bool) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	img.Set(1, 1, color.RGBA{255, 0, 0, 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if !withText {
		return b
	}
	// A tEXt chunk, standing for location metadata, before IEND.
	chunk := pngChunk("tEXt", []byte("GPS\x0048.8584N 2.2945E"))
	iend := len(b) - 12
	return append(append(append([]byte{}, b[:iend]...), chunk...), b[iend:]...)
}

func pngChunk(typ string, data []byte) []byte {
	var buf bytes.Buffer
	n := uint32(len(data))
	buf.Write([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	buf.WriteString(typ)
	buf.Write(data)
	crc := crc32.ChecksumIEEE(append([]byte(typ), data...))
	buf.Write([]byte{byte(crc >> 24), byte(crc >> 16), byte(crc >> 8), byte(crc)})
	return buf.Bytes()
}

func TestSniff(t *testing.T) {
	var jpg bytes.Buffer
	jpeg.Encode(&jpg, image.NewRGBA(image.Rect(0, 0, 2, 2)), nil)
	var docx bytes.Buffer
	zw := zip.NewWriter(&docx)
	for _, name := range []string{"[Content_Types].xml", "word/document.xml"} {
		w, _ := zw.Create(name)
		w.Write([]byte("<x/>"))
	}
	zw.Close()
	var plainZip bytes.Buffer
	zw = zip.NewWriter(&plainZip)
	w, _ := zw.Create("evil.html")
	w.Write([]byte("<script>"))
	zw.Close()
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"png", pngBytes(t, false), PNG},
		{"jpeg", jpg.Bytes(), JPEG},
		{"pdf", []byte("%PDF-1.7\n1 0 obj\n"), PDF},
		{"text", []byte("hello, world\n"), Text},
		{"docx", docx.Bytes(), DOCX},
		{"html named .png", []byte("<!DOCTYPE html><html><script>alert(1)</script>"), ""},
		{"svg", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), ""},
		{"svg without a prolog", []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`), ""},
		{"a png header and nothing", []byte("\x89PNG\r\n\x1a\n\x00\x00"), ""},
		{"a zip that is no office file", plainZip.Bytes(), ""},
		{"an executable", []byte("MZ\x90\x00\x03\x00\x00\x00"), ""},
	} {
		got, err := Sniff(c.data)
		if got != c.want || (c.want == "") != (err != nil) {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

func TestCleanDropsPNGMetadata(t *testing.T) {
	in := pngBytes(t, true)
	if !bytes.Contains(in, []byte("48.8584N")) {
		t.Fatal("the test image has no metadata")
	}
	out, err := Clean(PNG, in)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("48.8584N")) || bytes.Contains(out, []byte("tEXt")) {
		t.Error("the location survived")
	}
	if _, err := png.Decode(bytes.NewReader(out)); err != nil {
		t.Errorf("the cleaned image does not decode: %v", err)
	}
}

func TestName(t *testing.T) {
	for _, c := range []struct{ raw, typ, want string }{
		{"photo.png", PNG, "photo.png"},
		{`C:\Users\ann\report.pdf`, PDF, "report.pdf"},
		{"../../etc/passwd", Text, "passwd.txt"},
		{"invoice.png", PDF, "invoice.png.pdf"},
		{"a\"b\r\nc.jpg", JPEG, "abc.jpg"},
		{"", GIF, "file.gif"},
	} {
		if got := Name(c.raw, c.typ); got != c.want {
			t.Errorf("Name(%q, %s) = %q, want %q", c.raw, c.typ, got, c.want)
		}
	}
}

// A PNG header claiming 100,000 × 100,000 pixels is refused before any
// decoding would allocate them.
func TestSniffRefusesPixelBombs(t *testing.T) {
	var buf bytes.Buffer
	buf.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := []byte{0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 2, 0, 0, 0} // 100000 × 100000, 8-bit RGB
	buf.Write(pngChunk("IHDR", ihdr))
	buf.Write(pngChunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01}))
	buf.Write(pngChunk("IEND", nil))
	if _, err := Sniff(buf.Bytes()); err != ErrImageTooLarge {
		t.Errorf("a pixel bomb: %v, want ErrImageTooLarge", err)
	}
}
