package e2e

import (
	"strings"
	"testing"
)

// A mailed link's token rides in the #fragment, which the browser never
// sends: the page's script puts it in the form and takes it out of the
// address bar and the history.
func TestMailedLinkTokenStaysInTheBrowser(t *testing.T) {
	e := newEnv(t)
	tab := e.newTab(t, "reset")
	navigate(t, tab, e.parleyURL+"/reset#prt_secretTokenValue")
	code := eventually(t, tab, "the code filled in", js[string](`document.querySelector("[data-fragment-token]").value`),
		func(v string) bool { return v != "" })
	if code != "prt_secretTokenValue" {
		t.Errorf("the code field holds %q", code)
	}
	href := eventually(t, tab, "the address", js[string](`location.href`), func(string) bool { return true })
	if href != e.parleyURL+"/reset" {
		t.Errorf("the address bar still shows %q", href)
	}
	if strings.Contains(e.logs.String(), "secretTokenValue") {
		t.Error("the token reached the server")
	}
}
