package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/store"
)

// The inbox's search finds conversations by the user and by what was
// written, keeps the search in its links, and the server API searches
// the same way.
func TestInboxSearch(t *testing.T) {
	ts := newTestServer(t)
	ann := ts.newOwner(t, "Ann")
	app := ts.ownerApp(t, ann, store.ModeMonitor)
	tea := ts.converse(t, fields(app, "user_id", "u1", "name", "Tea Drinker", "email", "tea@example.com"), "My teapot arrived chipped")
	order := ts.converse(t, fields(app, "user_id", "u2", "email", "bob@example.com"), "Where is order 1042?")
	b := ts.signIn(t, ann)
	inbox := "/dashboard/apps/" + app.ID

	for q, want := range map[string][]string{
		"teapot":      {tea.ID},
		"1042":        {order.ID},
		"example.com": {order.ID, tea.ID},
		"drinker":     {tea.ID},
		"nothing":     nil,
	} {
		page := b.get(t, inbox+"?status=all&q="+url.QueryEscape(q))
		got := rowIDs(convRows(page.Body))
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("search %q = %v, want %v", q, got, want)
		}
		if want == nil && !strings.Contains(string(page.Body), "No conversation matches.") {
			t.Errorf("search %q: no word that nothing matched", q)
		}
	}
	page := string(b.get(t, inbox+"?q=teapot").Body)
	for _, want := range []string{`value="teapot"`, `?status=closed&amp;q=teapot`, `fragment=list`, `conversations/` + tea.ID + `?status=open&amp;q=teapot`} {
		if !strings.Contains(page, want) {
			t.Errorf("the search page lacks %s", want)
		}
	}
	if res := b.get(t, inbox+"?q="+strings.Repeat("x", 201)); res.Status != http.StatusBadRequest {
		t.Errorf("a 201-character search = %d, want 400", res.Status)
	}

	var out struct{ Conversations []struct{ ID string } }
	ts.api(t, app.APIKey, http.MethodGet, "/conversations?q=teapot", nil).decode(t, &out)
	if len(out.Conversations) != 1 || out.Conversations[0].ID != tea.ID {
		t.Errorf("API search = %+v", out)
	}
}
