package web

import (
	"bytes"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/chat"
	"github.com/parley-chat/parley/internal/store"
)

// upload posts a file as the chat frame does: multipart, the session
// token in the Authorization header, from Parley's origin.
func (ts *testServer) upload(t *testing.T, token, name, declared string, data []byte) httpResult {
	t.Helper()
	body, contentType := multipartFile(name, declared, data)
	return ts.do(t, http.MethodPost, "/api/widget/attachments", http.Header{
		"Content-Type": {contentType}, "Authorization": {"Bearer " + token}, "Origin": {ts.Origin}}, body)
}

// multipartFile is a form with one field, file.
func multipartFile(name, declared string, data []byte) (io.Reader, string) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+name+`"`)
	h.Set("Content-Type", declared)
	w, _ := mw.CreatePart(h)
	w.Write(data)
	mw.Close()
	return &body, mw.FormDataContentType()
}

func (ts *testServer) download(t *testing.T, token, id string) httpResult {
	t.Helper()
	return ts.do(t, http.MethodGet, "/api/widget/attachments/"+id, http.Header{"Authorization": {"Bearer " + token}}, nil)
}

// photo is a PNG carrying a location in a tEXt chunk, as a phone's photo
// carries it in EXIF.
func photo(t *testing.T) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	text := []byte("GPS\x0048.8584N 2.2945E")
	var chunk bytes.Buffer
	n := uint32(len(text))
	chunk.Write([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	chunk.WriteString("tEXt")
	chunk.Write(text)
	crc := crc32.ChecksumIEEE(append([]byte("tEXt"), text...))
	chunk.Write([]byte{byte(crc >> 24), byte(crc >> 16), byte(crc >> 8), byte(crc)})
	iend := len(b) - 12
	return append(append(append([]byte{}, b[:iend]...), chunk.Bytes()...), b[iend:]...)
}

type uploaded struct {
	Attachment struct {
		ID, Name, Type string
		Size           int64
	}
}

// TestAttachments: a user sends a photo and a PDF; the type comes from
// the bytes, the photo loses its location, both are served so that no
// browser runs them, and only to that user; what is not accepted is
// refused with the reason.
func TestAttachments(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.AttachmentMaxSize = 64 << 10 })
	app := ts.newApp(t, store.ModeMonitor)
	ann := ts.session(t, fields(app, "user_id", "ann"))
	bob := ts.session(t, fields(app, "user_id", "bob"))

	res := ts.upload(t, ann.Token, "IMG_0001.PNG", "image/png", photo(t))
	var img uploaded
	if res.Status != http.StatusCreated || json.Unmarshal(res.Body, &img) != nil || img.Attachment.Type != "image/png" || img.Attachment.Name != "IMG_0001.PNG" {
		t.Fatalf("upload a photo = %d %s", res.Status, res.Body)
	}
	// A PDF that says it is a PNG, by name and declared type.
	res = ts.upload(t, ann.Token, "invoice.png", "image/png", []byte("%PDF-1.7\n1 0 obj <<>> endobj\n"))
	var doc uploaded
	if res.Status != http.StatusCreated || json.Unmarshal(res.Body, &doc) != nil || doc.Attachment.Type != "application/pdf" || doc.Attachment.Name != "invoice.png.pdf" {
		t.Fatalf("upload a lying PDF = %d %s", res.Status, res.Body)
	}

	got := ts.download(t, ann.Token, img.Attachment.ID)
	if got.Status != http.StatusOK || bytes.Contains(got.Body, []byte("48.8584N")) {
		t.Fatalf("download the photo = %d; location kept: %v", got.Status, bytes.Contains(got.Body, []byte("48.8584N")))
	}
	for k, want := range map[string]string{"Content-Type": "image/png", "X-Content-Type-Options": "nosniff", "Content-Disposition": "inline; filename*=UTF-8''IMG_0001.PNG"} {
		if v := got.Header.Get(k); v != want {
			t.Errorf("%s: %q, want %q", k, v, want)
		}
	}
	if csp := got.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "sandbox") {
		t.Errorf("Content-Security-Policy %q, want a sandbox", csp)
	}
	if d := ts.download(t, ann.Token, doc.Attachment.ID).Header.Get("Content-Disposition"); !strings.HasPrefix(d, "attachment;") {
		t.Errorf("the PDF is served %q, want as an attachment", d)
	}

	// Another user, or nobody: not found, not refused (nothing to learn).
	if res := ts.download(t, bob.Token, img.Attachment.ID); res.Status != http.StatusNotFound {
		t.Errorf("another user's download = %d, want 404", res.Status)
	}
	if res := ts.do(t, http.MethodGet, "/api/widget/attachments/"+img.Attachment.ID, nil, nil); res.Status != http.StatusUnauthorized {
		t.Errorf("a download without a token = %d, want 401", res.Status)
	}

	// Sent in a message: the ack carries it; Bob cannot send Ann's.
	user := ts.connect(t, ann.Token)
	user.send(map[string]any{"type": "send", "client_msg_id": "with-files", "body": "", "attachment_ids": []string{img.Attachment.ID, doc.Attachment.ID}})
	ack := user.expect("ack")
	if m := ack.msg(t); len(m.Attachments) != 2 || m.Attachments[0].URL != "/api/widget/attachments/"+m.Attachments[0].ID {
		t.Fatalf("the ack's message: %s", ack.raw)
	}
	// A resend (the same client_msg_id) is acked with the stored message,
	// its files included.
	user.send(map[string]any{"type": "send", "client_msg_id": "with-files", "body": "", "attachment_ids": []string{img.Attachment.ID, doc.Attachment.ID}})
	if again := user.expect("ack"); !again.Duplicate || len(again.msg(t).Attachments) != 2 {
		t.Errorf("the duplicate's ack: %s", again.raw)
	}
	other := ts.connect(t, bob.Token)
	other.send(map[string]any{"type": "send", "client_msg_id": "steal", "body": "mine", "attachment_ids": []string{img.Attachment.ID}})
	if f := other.expectError("attachment_unknown"); f.ClientMsgID != "steal" {
		t.Errorf("error %s", f.raw)
	}
	if res := ts.download(t, bob.Token, img.Attachment.ID); res.Status != http.StatusNotFound {
		t.Errorf("another user's download after sending = %d, want 404", res.Status)
	}
	if res := ts.download(t, ann.Token, img.Attachment.ID); res.Status != http.StatusOK {
		t.Errorf("the sender's download after sending = %d", res.Status)
	}

	for name, c := range map[string]struct {
		data   []byte
		status int
		code   string
	}{
		"an HTML page named .png": {[]byte("<!DOCTYPE html><html><body><script>alert(document.cookie)</script>"), 415, "attachment_type_not_allowed"},
		"an SVG":                  {[]byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`), 415, "attachment_type_not_allowed"},
		"an oversized file":       {bytes.Repeat([]byte("a"), 65<<10), 413, "attachment_too_large"},
	} {
		res := ts.upload(t, ann.Token, "x.png", "image/png", c.data)
		if res.Status != c.status || !strings.Contains(string(res.Body), c.code) {
			t.Errorf("%s: %d %s, want %d %s", name, res.Status, res.Body, c.status, c.code)
		}
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	w, _ := mw.CreateFormFile("file", "a.txt")
	w.Write([]byte("hello"))
	mw.Close()
	if res := ts.do(t, http.MethodPost, "/api/widget/attachments", http.Header{"Content-Type": {mw.FormDataContentType()},
		"Authorization": {"Bearer " + ann.Token}, "Origin": {"https://evil.example"}}, &body); res.Status != http.StatusForbidden {
		t.Errorf("an upload from another origin = %d, want 403", res.Status)
	}
	if res := ts.do(t, http.MethodPost, "/api/widget/attachments", http.Header{"Origin": {ts.Origin}}, strings.NewReader("")); res.Status != http.StatusUnauthorized {
		t.Errorf("an upload without a token = %d, want 401", res.Status)
	}
}

// TestAttachmentQuota: a user past their quota is refused with 429.
func TestAttachmentQuota(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.AttachmentQuotas = store.AttachmentQuotas{PerUser: 100, PerApp: 1 << 20} })
	app := ts.newApp(t, store.ModeMonitor)
	ann := ts.session(t, fields(app, "user_id", "ann"))
	if res := ts.upload(t, ann.Token, "a.txt", "text/plain", bytes.Repeat([]byte("a"), 80)); res.Status != http.StatusCreated {
		t.Fatalf("first upload = %d %s", res.Status, res.Body)
	}
	if res := ts.upload(t, ann.Token, "b.txt", "text/plain", bytes.Repeat([]byte("b"), 80)); res.Status != http.StatusTooManyRequests || !strings.Contains(string(res.Body), "attachment_quota_exceeded") {
		t.Errorf("past the quota = %d %s", res.Status, res.Body)
	}
}

// TestAgentAttachments: agents send files through the server API and the
// dashboard; the user downloads them with their session, the agents
// with their API key or cookie, and nobody else.
func TestAgentAttachments(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	other := ts.newApp(t, store.ModeMonitor)
	user := ts.session(t, fields(app, "user_id", "u1"))
	stranger := ts.session(t, fields(app, "user_id", "u2"))
	conv := ts.connect(t, user.Token).startConversation("can you send the invoice?")

	// Through the server API: upload, then a reply that carries it.
	body, contentType := multipartFile("invoice.pdf", "application/pdf", []byte("%PDF-1.7\n1 0 obj <<>> endobj\n"))
	res := ts.do(t, http.MethodPost, "/api/v1/conversations/"+conv+"/attachments", http.Header{
		"Content-Type": {contentType}, "Authorization": {"Bearer " + app.APIKey}}, body)
	var pdf uploaded
	if res.Status != http.StatusCreated || json.Unmarshal(res.Body, &pdf) != nil || pdf.Attachment.Type != "application/pdf" {
		t.Fatalf("API upload = %d %s", res.Status, res.Body)
	}
	body, contentType = multipartFile("x.pdf", "application/pdf", []byte("%PDF-1.7\n"))
	if res := ts.do(t, http.MethodPost, "/api/v1/conversations/"+conv+"/attachments", http.Header{
		"Content-Type": {contentType}, "Authorization": {"Bearer " + other.APIKey}}, body); res.Status != http.StatusNotFound {
		t.Errorf("another app's upload to the conversation = %d, want 404", res.Status)
	}
	res = ts.api(t, app.APIKey, http.MethodPost, "/conversations/"+conv+"/messages", map[string]any{"attachment_ids": []string{pdf.Attachment.ID}, "author_name": "Ann"})
	var sent struct{ Message chat.MessageJSON }
	if res.Status != http.StatusCreated || json.Unmarshal(res.Body, &sent) != nil || len(sent.Message.Attachments) != 1 || sent.Message.Attachments[0].ID != pdf.Attachment.ID {
		t.Fatalf("API reply with a file = %d %s", res.Status, res.Body)
	}
	if res := ts.api(t, app.APIKey, http.MethodPost, "/conversations/"+conv+"/messages", map[string]any{"body": "again", "attachment_ids": []string{pdf.Attachment.ID}}); res.errorCode(t) != "attachment_unknown" {
		t.Errorf("a file sent twice = %d %s", res.Status, res.Body)
	}
	url0 := sent.Message.Attachments[0].URL
	for name, c := range map[string]struct {
		token string
		want  int
	}{
		"the user's session":      {user.Token, http.StatusOK},
		"the app's API key":       {app.APIKey, http.StatusOK},
		"another user's session":  {stranger.Token, http.StatusNotFound},
		"another app's API key":   {other.APIKey, http.StatusNotFound},
		"a token that is not one": {"nope", http.StatusUnauthorized},
	} {
		if res := ts.do(t, http.MethodGet, url0, http.Header{"Authorization": {"Bearer " + c.token}}, nil); res.Status != c.want {
			t.Errorf("download with %s = %d, want %d", name, res.Status, c.want)
		}
	}

	// Through the dashboard, with the cookie.
	b := ts.signIn(t, ann)
	body, contentType = multipartFile("photo.png", "image/png", photo(t))
	res = b.do(t, http.MethodPost, "/dashboard/apps/"+app.ID+"/conversations/"+conv+"/attachments", http.Header{
		"Content-Type": {contentType}, "Origin": {ts.Origin}, "Sec-Fetch-Site": {"same-origin"}}, body)
	var img uploaded
	if res.Status != http.StatusCreated || json.Unmarshal(res.Body, &img) != nil || img.Attachment.Type != "image/png" {
		t.Fatalf("dashboard upload = %d %s", res.Status, res.Body)
	}
	body, contentType = multipartFile("photo.png", "image/png", photo(t))
	if res := b.do(t, http.MethodPost, "/dashboard/apps/"+app.ID+"/conversations/"+conv+"/attachments", http.Header{
		"Content-Type": {contentType}, "Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}, body); res.Status != http.StatusForbidden {
		t.Errorf("a cross-site dashboard upload = %d, want 403", res.Status)
	}
	if res := b.post(t, "/dashboard/apps/"+app.ID+"/conversations/"+conv+"/messages", url.Values{"body": {"here it is"}, "attachment_ids": {img.Attachment.ID}}); res.Status != http.StatusSeeOther {
		t.Fatalf("dashboard reply with a file = %d %s", res.Status, res.Body)
	}
	page := b.get(t, "/dashboard/apps/"+app.ID+"/conversations/"+conv)
	for _, want := range []string{`data-type="image/png"`, `src="/dashboard/apps/` + app.ID + `/attachments/` + img.Attachment.ID + `"`, `data-type="application/pdf"`, "invoice.pdf"} {
		if !strings.Contains(string(page.Body), want) {
			t.Errorf("the thread lacks %s", want)
		}
	}
	if res := b.get(t, "/dashboard/apps/"+app.ID+"/attachments/"+img.Attachment.ID); res.Status != http.StatusOK || res.Header.Get("Content-Type") != "image/png" || bytes.Contains(res.Body, []byte("48.8584N")) {
		t.Errorf("the agent's download = %d %s", res.Status, res.Header.Get("Content-Type"))
	}
	if res := ts.download(t, user.Token, img.Attachment.ID); res.Status != http.StatusOK {
		t.Errorf("the user's download of the agent's photo = %d", res.Status)
	}
	// Another owner, whose app it is not; and the file under their app.
	bo := ts.newOwner(t, "Bo")
	theirs := ts.ownerApp(t, bo, store.ModeMonitor)
	if res := ts.signIn(t, bo).get(t, "/dashboard/apps/"+theirs.ID+"/attachments/"+img.Attachment.ID); res.Status != http.StatusNotFound {
		t.Errorf("another app's agent = %d, want 404", res.Status)
	}
	if res := ts.download(t, stranger.Token, img.Attachment.ID); res.Status != http.StatusNotFound {
		t.Errorf("another user's download of the agent's photo = %d, want 404", res.Status)
	}
}

// At the default limit (10 MB) a 2 MB file goes through every upload
// route, and one byte more than 10 MB is refused with the contract's code,
// not the server-wide backstop for bodies.
func TestAttachmentDefaultLimit(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	user := ts.session(t, fields(app, "user_id", "u1"))
	conv := ts.connect(t, user.Token).startConversation("here is the scan")
	pdf := func(n int) []byte { return append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte("0"), n-9)...) }

	if res := ts.upload(t, user.Token, "scan.pdf", "application/pdf", pdf(2<<20)); res.Status != http.StatusCreated {
		t.Errorf("a 2 MB file from the widget = %d %s", res.Status, res.Body)
	}
	body, ct := multipartFile("scan.pdf", "application/pdf", pdf(2<<20))
	if res := ts.do(t, http.MethodPost, "/api/v1/conversations/"+conv+"/attachments", http.Header{"Content-Type": {ct}, "Authorization": {"Bearer " + app.APIKey}}, body); res.Status != http.StatusCreated {
		t.Errorf("a 2 MB file through the API = %d %s", res.Status, res.Body)
	}
	body, ct = multipartFile("scan.pdf", "application/pdf", pdf(2<<20))
	if res := ts.signIn(t, ann).do(t, http.MethodPost, "/dashboard/apps/"+app.ID+"/conversations/"+conv+"/attachments", http.Header{
		"Content-Type": {ct}, "Origin": {ts.Origin}, "Sec-Fetch-Site": {"same-origin"}}, body); res.Status != http.StatusCreated {
		t.Errorf("a 2 MB file from the dashboard = %d %s", res.Status, res.Body)
	}
	res := ts.upload(t, user.Token, "big.pdf", "application/pdf", pdf(10<<20+1))
	res.wantError(t, http.StatusRequestEntityTooLarge, "attachment_too_large")
}
