package e2e

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

var attachmentsShown = js[[]map[string]any](`[...document.querySelectorAll('[data-testid="attachment"]')].map(a => ({
	type: a.dataset.type,
	loaded: a.querySelector("img") ? a.querySelector("img").naturalWidth : -1,
	text: a.textContent,
}))`)

// A user sends a photo from the chat frame: it is uploaded with the
// session token in a header, sent as a message, and shown inline, loaded
// the same way; a PDF is offered by name.
func TestWidgetSendsAttachments(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	// A picture of a teapot's chipped lid, as far as a test can draw one:
	// a warm gradient with a darker disc.
	img := image.NewRGBA(image.Rect(0, 0, 240, 160))
	for y := range 160 {
		for x := range 240 {
			c := color.RGBA{uint8(200 - y/2), uint8(120 + x/6), uint8(90 + y/3), 255}
			if dx, dy := x-120, y-80; dx*dx+dy*dy < 50*50 {
				c = color.RGBA{60, 90, 140, 255}
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	photo := filepath.Join(dir, "teapot.png")
	pdf := filepath.Join(dir, "receipt.pdf")
	if err := os.WriteFile(photo, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pdf, []byte("%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tab := e.newTab(t, "user")
	navigate(t, tab, e.pageURL(e.hostURL(), "u_ann"))
	do(t, tab, chromedp.Click(chromedp.CSS(launcherSel)))
	frame, _ := e.chatFrame(t, tab, "frame")
	waitConnected(t, frame)
	do(t, frame, chromedp.SetUploadFiles(chromedp.CSS(`[data-testid="attach"]`), []string{photo}))
	shown := eventually(t, frame, "the photo shown", attachmentsShown, func(a []map[string]any) bool {
		return len(a) == 1 && a[0]["loaded"] == float64(240)
	})
	if shown[0]["type"] != "image/png" {
		t.Errorf("shown %v", shown)
	}
	do(t, frame, chromedp.SetUploadFiles(chromedp.CSS(`[data-testid="attach"]`), []string{pdf}))
	eventually(t, frame, "the PDF offered by name", attachmentsShown, func(a []map[string]any) bool {
		return len(a) == 2 && a[1]["type"] == "application/pdf" && a[1]["text"] == "receipt.pdf (1 KB)"
	})
	if n := e.count(t, `SELECT count(*) FROM attachments WHERE message_id IS NOT NULL`); n != 2 {
		t.Errorf("%d attachments sent, want 2", n)
	}
	checkA11y(t, frame, "a chat with files")
	screenshot(t, tab, "widget-attachment.png", 1280, 800, false)

	// An HTML page named .png is refused, and the user is told why;
	// nothing is sent.
	page := filepath.Join(dir, "invoice.png")
	if err := os.WriteFile(page, []byte("<!DOCTYPE html><html><script>alert(document.domain)</script></html>"), 0o600); err != nil {
		t.Fatal(err)
	}
	do(t, frame, chromedp.SetUploadFiles(chromedp.CSS(`[data-testid="attach"]`), []string{page}))
	eventually(t, frame, "the refusal", js[string](`document.querySelector('[data-testid="notice"]').textContent`), func(s string) bool {
		return s == "That kind of file can't be sent: send an image, a PDF, a text file or an office document."
	})
	// An SVG, and a file over the default 10 MB, are refused in the same
	// way, each with its reason.
	svg := filepath.Join(dir, "logo.svg")
	big := filepath.Join(dir, "scan.pdf")
	if err := os.WriteFile(svg, []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><circle r="4"/></svg>`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, append([]byte("%PDF-1.7\n"), make([]byte, 10<<20)...), 0o600); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{svg: "That kind of file can't be sent: send an image, a PDF, a text file or an office document.", big: "That file is too large."} {
		do(t, frame, chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-testid="notice"]').textContent = ''`),
			chromedp.SetUploadFiles(chromedp.CSS(`[data-testid="attach"]`), []string{file}))
		eventually(t, frame, "the refusal of "+filepath.Base(file), js[string](`document.querySelector('[data-testid="notice"]').textContent`),
			func(s string) bool { return s == want })
	}
	if n := e.count(t, `SELECT count(*) FROM attachments`); n != 2 {
		t.Errorf("%d attachments kept after the refusals, want 2", n)
	}

	// Another user of the app, in another browser, asks for Ann's photo
	// with their own session: not found.
	otherTab := e.newTab(t, "other user")
	navigate(t, otherTab, e.pageURL(e.hostURL(), "u_bob"))
	do(t, otherTab, chromedp.Click(chromedp.CSS(launcherSel)))
	other, _ := e.chatFrame(t, otherTab, "other frame")
	waitConnected(t, other)
	token := e.sessionToken(t, other)
	var photoID string
	if err := e.raw.QueryRowContext(t.Context(), `SELECT id FROM attachments WHERE type = 'image/png'`).Scan(&photoID); err != nil {
		t.Fatal(err)
	}
	if got, err := chromedp.Run(other, chromedp.Evaluate[int](`fetch('/api/widget/attachments/`+photoID+`', {headers: {Authorization: 'Bearer `+token+`'}}).then(r => r.status)`, chromedp.EvalAwaitPromise)); err != nil || got != 404 {
		t.Errorf("another user's download = %d (%v), want 404", got, err)
	}

	// A PDF named .png, which the browser declares image/png: its bytes
	// decide, and it is offered as the PDF it is.
	lying := filepath.Join(dir, "photo.png")
	if err := os.WriteFile(lying, []byte("%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	do(t, frame, chromedp.SetUploadFiles(chromedp.CSS(`[data-testid="attach"]`), []string{lying}))
	eventually(t, frame, "the lying file offered as a PDF", attachmentsShown, func(a []map[string]any) bool {
		return len(a) == 3 && a[2]["type"] == "application/pdf" && a[2]["text"] == "photo.png.pdf (1 KB)"
	})

	// The agent sees the photo in the thread (fetched with the cookie) and
	// answers with a file of their own, which reaches the widget live.
	var conv string
	if err := e.raw.QueryRowContext(t.Context(), `SELECT conversation_id FROM attachments LIMIT 1`).Scan(&conv); err != nil {
		t.Fatal(err)
	}
	dash := e.signIn(t, e.createOwner(t, "Olivia Park", e.app.ID), "dashboard")
	navigate(t, dash, e.parleyURL+"/dashboard/apps/"+e.app.ID+"/conversations/"+conv)
	waitLive(t, dash)
	eventually(t, dash, "the user's photo in the thread", attachmentsShown, func(a []map[string]any) bool {
		return len(a) == 3 && a[0]["loaded"] == float64(240) && a[1]["type"] == "application/pdf" && a[2]["type"] == "application/pdf"
	})
	notes := filepath.Join(dir, "instructions.txt")
	if err := os.WriteFile(notes, []byte("Glue the lid with food-safe epoxy."), 0o600); err != nil {
		t.Fatal(err)
	}
	do(t, dash, chromedp.SetUploadFiles(chromedp.CSS(`[data-testid="reply-attach"]`), []string{notes}))
	eventually(t, dash, "the upload listed", js[string](`document.querySelector('[data-testid="pending-files"]').textContent`),
		func(s string) bool { return s == "instructions.txt Remove" })
	do(t, dash, chromedp.Click(chromedp.CSS(`[data-testid="reply-send"]`)))
	eventually(t, frame, "the agent's file in the widget", attachmentsShown, func(a []map[string]any) bool {
		return len(a) == 4 && a[3]["type"] == "text/plain; charset=utf-8" && a[3]["text"] == "instructions.txt (1 KB)"
	})
}
