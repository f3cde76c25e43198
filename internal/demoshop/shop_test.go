package demoshop

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"testing"

	"github.com/parley-chat/parley/internal/identity"
)

func TestHomeEmbedsTheLoggedInUsersHash(t *testing.T) {
	shop := &Shop{ParleyURL: "http://127.0.0.1:9", AppID: "app_demo", IdentitySecret: "s3cret", APIKey: "psk_x"}
	srv := httptest.NewServer(shop.Handler())
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}

	settings := func() map[string]string {
		t.Helper()
		resp, err := client.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?s)<script id="parley-settings" type="application/json">(.*?)</script>`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("no settings in page:\n%s", body)
		}
		var s map[string]string
		if err := json.Unmarshal(m[1], &s); err != nil {
			t.Fatal(err)
		}
		return s
	}

	if s := settings(); s["app_id"] != "app_demo" || s["user_id"] != "" || s["user_hash"] != "" {
		t.Fatalf("anonymous settings = %v", s)
	}
	if _, err := client.PostForm(srv.URL+"/login", url.Values{"user": {"u_bob"}}); err != nil {
		t.Fatal(err)
	}
	s := settings()
	if got, want := s["user_hash"], identity.UserHash("s3cret", "u_bob"); s["user_id"] != "u_bob" || got != want {
		t.Fatalf("logged-in settings = %v, want user_hash %s", s, want)
	}
}
