package webhooks_test

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/parley-chat/parley/internal/webhooks"
)

// verify checks headers with the Standard Webhooks project's own Go
// library, not with our signer.
func verify(t *testing.T, secret string, body []byte, h webhooks.Headers) error {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatalf("the reference library refuses the secret %q: %v", secret, err)
	}
	return wh.Verify(body, http.Header{"Webhook-Id": {h.ID}, "Webhook-Timestamp": {h.Timestamp}, "Webhook-Signature": {h.Signature}})
}

func TestSignaturesVerifyWithTheReferenceLibrary(t *testing.T) {
	body := []byte(`{"type":"message.created","data":{"body":"héllo"}}`)
	secret := webhooks.NewSecret()
	h, err := webhooks.Sign("msg_1", time.Now(), body, secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(t, secret, body, h); err != nil {
		t.Fatalf("reference library: %v", err)
	}
	if err := verify(t, webhooks.NewSecret(), body, h); err == nil {
		t.Fatal("another secret verified the signature")
	}
	if err := verify(t, secret, append(body, ' '), h); err == nil {
		t.Fatal("a changed body verified")
	}
	old, _ := webhooks.Sign("msg_1", time.Now().Add(-time.Hour), body, secret)
	if err := verify(t, secret, body, old); err == nil {
		t.Fatal("an hour-old timestamp verified: the receiver's replay window")
	}

	// During a rotation both secrets sign: a receiver with either verifies.
	next := webhooks.NewSecret()
	both, err := webhooks.Sign("msg_2", time.Now(), body, next, secret)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(both.Signature)); n != 2 {
		t.Fatalf("signature header %q has %d signatures, want 2", both.Signature, n)
	}
	for _, s := range []string{secret, next} {
		if err := verify(t, s, body, both); err != nil {
			t.Fatalf("a receiver with one of the two secrets: %v", err)
		}
	}
}

func TestSecrets(t *testing.T) {
	a, b := webhooks.NewSecret(), webhooks.NewSecret()
	if a == b || !strings.HasPrefix(a, "whsec_") {
		t.Fatalf("secrets %q, %q", a, b)
	}
	for _, bad := range []string{"", "sk_abc", "whsec_!!!", "whsec_c2hvcnQ="} {
		if _, err := webhooks.Sign("m", time.Now(), nil, bad); err == nil {
			t.Errorf("signed with %q", bad)
		}
	}
}

func TestParseEvents(t *testing.T) {
	all, err := webhooks.ParseEvents(nil)
	if err != nil || len(all) != len(webhooks.Events) {
		t.Fatalf("no events = %v, %v; want all", all, err)
	}
	got, err := webhooks.ParseEvents([]string{"message.created,conversation.closed", "message.created"})
	if err != nil || strings.Join(got, " ") != "conversation.closed message.created" {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := webhooks.ParseEvents([]string{"message.deleted"}); err == nil || !strings.Contains(err.Error(), "unknown event") {
		t.Fatalf("unknown event: %v", err)
	}
}

type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestGuard(t *testing.T) {
	r := fakeResolver{
		"hooks.example.com": addrs("93.184.216.34"),
		"internal.example":  addrs("10.1.2.3"),
		"rebind.example":    addrs("93.184.216.34", "127.0.0.1"),
		"metadata.example":  addrs("169.254.169.254"),
		"v6private.example": addrs("fd00::1"),
		"mapped.example":    addrs("::ffff:127.0.0.1"),
	}
	none, _ := webhooks.ParseAllow(nil)
	loop, err := webhooks.ParseAllow([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		g    webhooks.Guard
		url  string
		want string // "" for accepted
	}{
		{none, "https://hooks.example.com/parley", ""},
		{none, "http://hooks.example.com/parley", "must be https"},
		{none, "https://internal.example/x", "internal address"},
		{none, "https://rebind.example/x", "internal address"},
		{none, "https://metadata.example/latest", "internal address"},
		{none, "https://169.254.169.254/latest/meta-data", "internal address"},
		{none, "https://v6private.example/", "internal address"},
		{none, "https://mapped.example/", "internal address"},
		{none, "https://[::1]:8443/", "internal address"},
		{none, "https://[::1%25lo]/", "internal address"},
		{none, "https://[fe80::1%25eth0]/", "internal address"},
		{none, "https://[64:ff9b::a00:1]/", "internal address"},
		{none, "https://[64:ff9b::5db8:d822]/", ""},
		{none, "https://[2002:a00:1::1]/", "internal address"},
		{none, "https://[::127.0.0.1]/", "internal address"},
		{none, "https://[fec0::1]/", "internal address"},
		{none, "https://:443/", "not an https:// URL"},
		{none, "https://127.0.0.1:9/", "internal address"},
		{none, "https://nowhere.example/", ""}, // resolved again at every send
		{none, "http://nowhere.example/", "cannot resolve"},
		{loop, "http://[::ffff:127.0.0.1]:9/", ""},
		{none, "ftp://hooks.example.com/", "not an https:// URL"},
		{none, "hooks.example.com/x", "not an https:// URL"},
		{none, "https://user:pw@hooks.example.com/", "no user or password"},
		{loop, "http://127.0.0.1:9000/hook", ""},
		{loop, "https://127.0.0.1:9000/hook", ""},
		{loop, "http://hooks.example.com/", "must be https"},
		{loop, "https://internal.example/", "internal address"},
	} {
		_, err := tc.g.CheckURL(ctx, r, tc.url)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.url, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want one saying %q", tc.url, err, tc.want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "localhost", "1.2.3"} {
		if _, err := webhooks.ParseAllow([]string{bad}); err == nil {
			t.Errorf("ParseAllow(%q) accepted", bad)
		}
	}
}

// The dialer's check refuses the connection itself, whatever the name
// resolved to when the URL was checked.
func TestDialControlRefusesInternalAddresses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	none, _ := webhooks.ParseAllow(nil)
	d := net.Dialer{Control: none.DialControl, Timeout: 5 * time.Second}
	if c, err := d.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("dialed a loopback address without it being allowed")
	}
	loop, _ := webhooks.ParseAllow([]string{"127.0.0.1"})
	d.Control = loop.DialControl
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("an allowed address: %v", err)
	}
	c.Close()
}
