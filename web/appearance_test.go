package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/store"
)

// widgetConfig asks for config.js as the loader does and returns the
// object it hands to Parley.c.
func (ts *testServer) widgetConfig(t *testing.T, appID, origin, locale string, hdr http.Header) map[string]any {
	t.Helper()
	res := ts.do(t, http.MethodGet, "/api/widget/config.js?app_id="+url.QueryEscape(appID)+"&origin="+url.QueryEscape(origin)+
		"&locale="+url.QueryEscape(locale), hdr, nil)
	body := string(res.Body)
	if res.Status != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") ||
		!strings.HasPrefix(body, "Parley.c(") || !strings.HasSuffix(body, ");") {
		t.Fatalf("config.js = %d %q %s", res.Status, res.Header.Get("Content-Type"), body)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimPrefix(body, "Parley.c("), ");")), &out); err != nil {
		t.Fatalf("config.js carries no JSON: %s", body)
	}
	return out
}

// The loader's config: the look, in the app's colours with a readable
// text colour, the launcher's words in the page's or the browser's
// language; a page off the allowlist is refused by name and the refusal
// is kept for the dashboard.
func TestWidgetConfig(t *testing.T) {
	ts := newTestServer(t)
	app := ts.newApp(t, store.ModeMonitor)
	if err := ts.DB.SetAppearance(t.Context(), app.ID, store.Appearance{Color: "#ffd400", Position: "left", LauncherLabel: "Chat", TeamName: "Teapots", Locale: "fr"}); err != nil {
		t.Fatal(err)
	}
	got := ts.widgetConfig(t, app.ID, shopOrigin, "", nil)
	if got["color"] != "#ffd400" || got["text_color"] != "#000000" || got["position"] != "left" || got["team_name"] != "Teapots" ||
		!strings.Contains(got["launcher_css"].(string), "left:20px") || !strings.Contains(got["launcher_css"].(string), "color:#000000") {
		t.Errorf("config %v", got)
	}
	if s := got["strings"].(map[string]any); s["open"] != "Ouvrir le chat" {
		t.Errorf("no language asked: %v, want the app's (French)", s)
	}
	if s := ts.widgetConfig(t, app.ID, shopOrigin, "", http.Header{"Accept-Language": {"de-DE,de;q=0.9"}})["strings"].(map[string]any); s["open"] != "Chat öffnen" {
		t.Errorf("a German browser: %v", s)
	}
	if s := ts.widgetConfig(t, app.ID, shopOrigin, "ja", http.Header{"Accept-Language": {"de"}})["strings"].(map[string]any); s["open"] != "チャットを開く" {
		t.Errorf("the page's locale before the browser's: %v", s)
	}

	refused := ts.widgetConfig(t, app.ID, "https://elsewhere.example", "", nil)
	e, _ := refused["error"].(map[string]any)
	if e["code"] != "origin_not_allowed" || !strings.Contains(e["message"].(string), `"https://elsewhere.example"`) || refused["color"] != nil {
		t.Errorf("another origin: %v", refused)
	}
	if rows, _ := ts.DB.RefusedOrigins(t.Context(), app.ID, time.Now().Add(-time.Minute)); len(rows) != 1 || rows[0].Origin != "https://elsewhere.example" {
		t.Errorf("refused origins kept: %+v", rows)
	}
	if e := ts.widgetConfig(t, "app_nope", shopOrigin, "", nil)["error"].(map[string]any); e["code"] != "app_not_found" {
		t.Errorf("an unknown app: %v", e)
	}
	// Whatever the page sends, the answer is a call with JSON in it.
	res := ts.do(t, http.MethodGet, "/api/widget/config.js?app_id="+url.QueryEscape(`");alert(1)//</script>`)+"&origin=%3C/script%3E", nil, nil)
	arg := strings.TrimSuffix(strings.TrimPrefix(string(res.Body), "Parley.c("), ");")
	if !json.Valid([]byte(arg)) || strings.Contains(arg, "</script") || len(arg) == len(res.Body) {
		t.Errorf("config.js is not one call with JSON: %s", res.Body)
	}
}

// The dashboard's appearance settings: saved, refused with the reason,
// and the team's picture checked by its bytes and served from Parley.
func TestAppearanceSettings(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	b := ts.signIn(t, ann)
	settings := "/dashboard/apps/" + app.ID + "/settings"
	page := b.get(t, settings)
	for _, want := range []string{`data-testid="appearance-preview"`, `value="#2457d6"`, `<option value="ar">العربية</option>`} {
		if !strings.Contains(string(page.Body), want) {
			t.Errorf("the settings page lacks %s", want)
		}
	}
	res := b.post(t, settings+"/appearance", url.Values{"color": {"#0b6e4f"}, "position": {"left"}, "launcher_label": {"Help"}, "team_name": {"Teapot team"}, "locale": {"de"}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("save = %d %s", res.Status, res.Body)
	}
	got, _ := ts.DB.App(t.Context(), app.ID)
	if got.Appearance.Color != "#0b6e4f" || got.Appearance.Position != "left" || got.Appearance.TeamName != "Teapot team" || got.Appearance.Locale != "de" {
		t.Errorf("saved %+v", got.Appearance)
	}
	for name, form := range map[string]url.Values{
		"a colour that is CSS": {"color": {"red;x:y"}, "position": {"left"}, "locale": {"de"}},
		"a language we lack":   {"color": {"#0b6e4f"}, "position": {"left"}, "locale": {"sv"}},
	} {
		if res := b.post(t, settings+"/appearance", form); res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), `data-testid="appearance-error"`) {
			t.Errorf("%s: %d", name, res.Status)
		}
	}
	if got2, _ := ts.DB.App(t.Context(), app.ID); got2.Appearance != got.Appearance {
		t.Errorf("a refused form changed the look: %+v", got2.Appearance)
	}

	upload := func(name string, data []byte) httpResult {
		body, ct := multipartFile(name, "image/png", data)
		return b.do(t, http.MethodPost, settings+"/avatar", http.Header{"Content-Type": {ct}, "Origin": {ts.Origin}, "Sec-Fetch-Site": {"same-origin"}}, body)
	}
	if res := upload("me.png", []byte("<html><script>alert(1)</script></html>")); res.Status != http.StatusBadRequest {
		t.Errorf("an HTML page named .png as the picture = %d", res.Status)
	}
	if res := upload("me.png", photo(t)); res.Status != http.StatusSeeOther {
		t.Fatalf("upload a picture = %d %s", res.Status, res.Body)
	}
	look := ts.widgetConfig(t, app.ID, shopOrigin, "", nil)
	avatar := look["avatar_url"].(string)
	res = ts.do(t, http.MethodGet, avatar, nil, nil)
	if res.Status != http.StatusOK || res.Header.Get("Content-Type") != "image/png" || bytes.Contains(res.Body, []byte("48.8584N")) ||
		!strings.Contains(res.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("the picture = %d %q %q", res.Status, res.Header.Get("Content-Type"), res.Header.Get("Cache-Control"))
	}
	if res := b.post(t, settings+"/avatar/remove", nil); res.Status != http.StatusSeeOther {
		t.Errorf("remove = %d", res.Status)
	}
	if res := ts.do(t, http.MethodGet, avatar, nil, nil); res.Status != http.StatusNotFound {
		t.Errorf("the removed picture = %d", res.Status)
	}
}

// A refused origin is listed on the settings page, and allowed with a
// click.
func TestAllowRefusedOrigin(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	ts.widgetConfig(t, app.ID, "https://www.shop.example.com", "", nil)
	b := ts.signIn(t, ann)
	settings := "/dashboard/apps/" + app.ID + "/settings"
	if page := string(b.get(t, settings).Body); !strings.Contains(page, `data-testid="refused-origin"`) || !strings.Contains(page, "https://www.shop.example.com") {
		t.Fatalf("the refused origin is not listed")
	}
	if res := b.post(t, settings+"/origins/allow", url.Values{"origin": {"https://www.shop.example.com"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("allow = %d %s", res.Status, res.Body)
	}
	if got := ts.widgetConfig(t, app.ID, "https://www.shop.example.com", "", nil); got["error"] != nil {
		t.Errorf("after allowing: %v", got)
	}
	if page := string(b.get(t, settings).Body); strings.Contains(page, `data-testid="refused-origin"`) {
		t.Errorf("an allowed origin is still listed as refused")
	}
	if res := b.post(t, settings+"/origins/allow", url.Values{"origin": {"javascript:alert(1)"}}); res.Status != http.StatusBadRequest {
		t.Errorf("allowing a non-origin = %d", res.Status)
	}
}
