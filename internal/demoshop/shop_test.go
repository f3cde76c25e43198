package demoshop

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestHomeEmbedsTheLoggedInUsersJWT(t *testing.T) {
	shop := &Shop{ParleyURL: "http://127.0.0.1:9", AppID: "app_demo", IdentitySecretID: "isk_demo", IdentitySecret: "s3cret", APIKey: "psk_x"}
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

	if s := settings(); s["app_id"] != "app_demo" || len(s) != 1 {
		t.Fatalf("anonymous settings = %v, want the app id only", s)
	}
	if _, err := client.PostForm(srv.URL+"/login", url.Values{"user": {"u_bob"}}); err != nil {
		t.Fatal(err)
	}
	s := settings()
	if len(s) != 2 || s["user_jwt"] == "" {
		t.Fatalf("logged-in settings = %v, want app_id and user_jwt", s)
	}
	var claims struct {
		jwt.RegisteredClaims
		Email string `json:"email"`
		Name  string `json:"name"`
	}
	tok, err := jwt.ParseWithClaims(s["user_jwt"], &claims, func(tok *jwt.Token) (any, error) {
		if tok.Header["kid"] != "isk_demo" {
			return nil, fmt.Errorf("kid %v, want isk_demo", tok.Header["kid"])
		}
		return []byte("s3cret"), nil
	}, jwt.WithValidMethods([]string{"HS256"}), jwt.WithAudience("app_demo"), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil || !tok.Valid {
		t.Fatalf("user_jwt does not verify: %v", err)
	}
	if claims.Subject != "u_bob" || claims.Email != "bob@example.com" || claims.Name != "Bob Brown" {
		t.Errorf("claims = %+v, want Bob's", claims)
	}
	if life := claims.ExpiresAt.Sub(claims.IssuedAt.Time); life <= 0 || life > time.Hour {
		t.Errorf("token lives %v, want at most an hour", life)
	}
}
