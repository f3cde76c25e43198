package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// ---- the frame's first-open bytes ----

// assetSize is one file the chat needs when it first opens.
type assetSize struct {
	Path    string // as requested, e.g. /static/frame.js?v=…
	Why     string // what referenced it
	Raw, Gz int    // bytes as served (decompressed), and gzip -9 of them
	Wire    string // the Content-Encoding the server sent to a gzip-accepting client ("" = none)
}

type frameResult struct {
	Files []assetSize
	Gz    int // the sum of Files' Gz
	Raw   int
	// Loader is /widget.js, which runs on the host page before the chat
	// opens: measured on its own target, not part of Gz.
	Loader assetSize
	// SecondScript says whether the loader names a second script it
	// loads when the chat opens (the loader split) and which.
	SecondScript string
	// Config is the look the loader asks for on every page view
	// (/api/widget/config.js), before the chat opens: reported beside the
	// loader, not part of Gz.
	Config assetSize
}

var (
	// src= and href= of the tags that make a browser fetch something.
	tagRef  = regexp.MustCompile(`(?is)<(script|link|img|source|iframe|video|audio)\b[^>]*?\s(?:src|href)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))`)
	linkRel = regexp.MustCompile(`(?is)\srel\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))`)
	cssURL  = regexp.MustCompile(`(?i)url\(\s*['"]?([^'")\s]+)['"]?\s*\)|@import\s+['"]([^'"]+)['"]`)
	// A quoted path of a script or stylesheet inside a script: how the
	// loader names what it loads on open.
	jsPath = regexp.MustCompile(`["'](/[A-Za-z0-9._~/-]*\.(?:js|css)(?:\?[^"'\s]*)?)["']`)
)

// frameSize fetches the chat frame page as the browser opens it from the
// loader (/w/<app_id>#origin=<host page origin>; the fragment stays in
// the browser), every subresource it references, what those reference
// (url() in stylesheets, quoted /…js paths in scripts), and the script the
// loader adds when the chat opens if it names one; each is compressed
// with gzip -9.
func frameSize(ctx context.Context, c *client) (*frameResult, error) {
	r := &frameResult{}
	base, err := url.Parse(c.srv.url)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var queue []assetSize // to fetch: Path and Why set
	add := func(ref, from, why string) {
		u, err := url.Parse(strings.TrimSpace(ref))
		if err != nil || u.Scheme == "data" {
			return
		}
		fromURL, _ := url.Parse(from)
		u = base.ResolveReference(fromURL).ResolveReference(u)
		if u.Host != base.Host { // CSP lets the frame load only its own origin's assets
			return
		}
		u.Fragment = ""
		p := u.RequestURI()
		if !seen[p] {
			seen[p] = true
			queue = append(queue, assetSize{Path: p, Why: why})
		}
	}

	// The loader first: on the host page, not part of the total, but it
	// names the second script.
	loader, data, err := fetchAsset(ctx, c, assetSize{Path: "/widget.js", Why: "loader, on the host page"}, "script")
	if err != nil {
		return nil, err
	}
	r.Loader = loader
	seen["/widget.js"] = true
	for _, m := range jsPath.FindAllStringSubmatch(string(data), -1) {
		if strings.HasPrefix(m[1], "/w/") || m[1] == "/widget.js" {
			continue
		}
		if strings.HasPrefix(m[1], "/api/widget/config.js") {
			cfg := assetSize{Path: "/api/widget/config.js?app_id=" + url.QueryEscape(c.srv.appID) + "&origin=" + url.QueryEscape(parentOrigin) + "&locale=",
				Why: "the look, asked by /widget.js on every page view"}
			if r.Config, _, err = fetchAsset(ctx, c, cfg, "script"); err != nil {
				return nil, err
			}
			continue
		}
		if r.SecondScript == "" {
			r.SecondScript = m[1]
		}
		add(m[1], "/widget.js", "loaded by /widget.js when the chat opens")
	}

	page := "/w/" + url.PathEscape(c.srv.appID)
	seen[page] = true
	queue = append([]assetSize{{Path: page, Why: "the frame page (iframe src " + page + "#origin=" + url.QueryEscape(parentOrigin) + ")"}}, queue...)
	for i := 0; i < len(queue); i++ {
		a := queue[i]
		dest := "script"
		switch {
		case a.Path == page:
			dest = "iframe"
		case strings.Contains(a.Path, ".css"):
			dest = "style"
		}
		a, data, err := fetchAsset(ctx, c, a, dest)
		if err != nil {
			return nil, err
		}
		r.Files = append(r.Files, a)
		r.Gz += a.Gz
		r.Raw += a.Raw
		text := string(data)
		switch dest {
		case "iframe":
			for _, m := range tagRef.FindAllStringSubmatch(text, -1) {
				if strings.EqualFold(m[1], "link") && !fetchedRel(m[0]) {
					continue
				}
				add(m[2]+m[3]+m[4], a.Path, "<"+strings.ToLower(m[1])+"> in the frame page")
			}
		case "style":
			for _, m := range cssURL.FindAllStringSubmatch(text, -1) {
				add(m[1]+m[2], a.Path, "referenced by "+a.Path)
			}
		default:
			for _, m := range jsPath.FindAllStringSubmatch(text, -1) {
				if !strings.HasPrefix(m[1], "/w/") {
					add(m[1], a.Path, "named in "+a.Path)
				}
			}
		}
	}
	return r, nil
}

// fetchedRel says whether a <link> tag is one the browser fetches on load.
func fetchedRel(tag string) bool {
	m := linkRel.FindStringSubmatch(tag)
	if m == nil {
		return false
	}
	for rel := range strings.FieldsSeq(strings.ToLower(m[1] + m[2] + m[3])) {
		switch rel {
		case "stylesheet", "icon", "preload", "modulepreload", "manifest":
			return true
		}
	}
	return false
}

// fetchAsset GETs a.Path with the headers a browser sends for dest,
// accepting gzip, and fills in the sizes.
func fetchAsset(ctx context.Context, c *client, a assetSize, dest string) (assetSize, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.srv.url+a.Path, nil)
	if err != nil {
		return a, nil, err
	}
	// Set by hand, so the transport hands over the body as sent.
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("Sec-Fetch-Dest", dest)
	if dest == "iframe" {
		req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
		req.Header.Set("Sec-Fetch-Mode", "navigate")
		req.Header.Set("Sec-Fetch-Site", "cross-site") // the host page is another site
	} else {
		req.Header.Set("Sec-Fetch-Mode", "no-cors")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return a, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return a, nil, fmt.Errorf("GET %s (%s): %s", a.Path, a.Why, resp.Status)
	}
	var body io.Reader = resp.Body
	a.Wire = resp.Header.Get("Content-Encoding")
	switch a.Wire {
	case "":
	case "gzip":
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return a, nil, fmt.Errorf("GET %s: %v", a.Path, err)
		}
		body = zr
	default:
		return a, nil, fmt.Errorf("GET %s: Content-Encoding %q not handled", a.Path, a.Wire)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return a, nil, err
	}
	a.Raw, a.Gz = len(data), gzipSize(data)
	return a, data, nil
}

// gzipSize is the size of data compressed with gzip -9.
func gzipSize(data []byte) int {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zw.Write(data)
	zw.Close()
	return b.Len()
}

const frameTarget = 30 * 1024

func (x *frameResult) row() string {
	parts := make([]string, len(x.Files))
	for i, f := range x.Files {
		parts[i] = fmt.Sprintf("%s %s", shortPath(f.Path), kb(float64(f.Gz)))
	}
	return fmt.Sprintf("| everything the frame needs on first open, gzipped | %.2f KB (%d bytes gzip -9 of %d files: %s) | ≤ 30 KB | %s |",
		float64(x.Gz)/1024, x.Gz, len(x.Files), strings.Join(parts, " + "), verdict(x.Gz <= frameTarget))
}

// shortPath drops the cache-busting query of an asset URL.
func shortPath(p string) string {
	p, _, _ = strings.Cut(p, "?")
	return "`" + p + "`"
}

func (x *frameResult) details(p func(string, ...any)) {
	second := "The loader names a second script, `" + x.SecondScript + "`, which it adds when the chat opens: counted."
	if x.SecondScript == "" {
		second = "The loader names no second script (no quoted `/…js` path in `/widget.js`), so none is counted."
	}
	p("**The frame's first-open bytes.** The frame page as the loader opens it (`/w/<app_id>#origin=%s`; the fragment stays in the browser), fetched with a browser's headers, then every subresource its HTML references (`src`/`href` of scripts, stylesheets, images, icons), whatever those reference (`url()` and `@import` in stylesheets, quoted `/…js` or `/…css` paths in scripts), and the script the loader adds when the chat opens. %s Each file is measured as served (decompressed) and compressed with gzip -9 (`gzip.BestCompression`); the total is %d bytes gzip -9 (%d raw). The loader itself (`/widget.js`, %d bytes gzip -9) runs on the host page before the chat opens and has its own target above; it is not in the total, and neither is the look it asks for on every page view (`/api/widget/config.js`, %d bytes gzip -9, %d raw, cached a minute). API calls and the websocket are not counted.",
		parentOrigin, second, x.Gz, x.Raw, x.Loader.Gz, x.Config.Gz, x.Config.Raw)
	p("")
	p("| file | why | raw | gzip -9 | served with |")
	p("|---|---|---|---|---|")
	var plain []string
	for _, f := range x.Files {
		wire := "Content-Encoding: " + f.Wire
		if f.Wire == "" {
			wire = "no compression"
			plain = append(plain, shortPath(f.Path))
		}
		p("| %s | %s | %d | %d | %s |", shortPath(f.Path), f.Why, f.Raw, f.Gz, wire)
	}
	p("")
	if len(plain) > 0 {
		p("Asked with `Accept-Encoding: gzip`, the server sent %s uncompressed, so on the wire %s more than the gzip figure above.", strings.Join(plain, ", "), map[bool]string{true: "it is", false: "they are"}[len(plain) == 1])
		p("")
	}
}

func (x *frameResult) why() string {
	if x.Gz <= frameTarget {
		return ""
	}
	big := x.Files[0]
	for _, f := range x.Files {
		if f.Gz > big.Gz {
			big = f
		}
	}
	return fmt.Sprintf("- **The frame's first-open bytes** are %d gzipped, above 30 KB; the largest file is %s at %d bytes gzip -9.", x.Gz, shortPath(big.Path), big.Gz)
}
