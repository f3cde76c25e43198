package locales

import (
	"regexp"
	"slices"
	"testing"
)

var placeholder = regexp.MustCompile(`\{[a-z]+\}`)

// Every language has every key of English, with the same placeholders,
// and nothing English does not have.
func TestCatalogsMatchEnglish(t *testing.T) {
	want := []string{"ar", "de", "en", "es", "fr", "it", "ja", "nl", "pl", "pt"}
	for _, tag := range want {
		if _, ok := Get(tag); !ok {
			t.Errorf("no %s.json", tag)
		}
	}
	en, _ := Get("en")
	for _, tag := range Tags() {
		c, _ := Get(tag)
		if d := c.Dir(); d != "ltr" && d != "rtl" {
			t.Errorf("%s: _dir %q", tag, d)
		}
		for k, v := range en.Strings {
			got, ok := c.Strings[k]
			if !ok || got == "" {
				t.Errorf("%s: no %q", tag, k)
				continue
			}
			a, b := placeholder.FindAllString(v, -1), placeholder.FindAllString(got, -1)
			slices.Sort(a)
			slices.Sort(b)
			if !slices.Equal(a, b) {
				t.Errorf("%s: %q has placeholders %v, English %v", tag, k, b, a)
			}
		}
		for k := range c.Strings {
			if _, ok := en.Strings[k]; !ok {
				t.Errorf("%s: %q is not a key of en.json", tag, k)
			}
		}
	}
	if ar, _ := Get("ar"); ar.Dir() != "rtl" {
		t.Errorf("Arabic is not right to left")
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		fallback string
		wants    []string
		want     string
	}{
		{"en", []string{"de"}, "de"},
		{"en", []string{"", "de-CH,de;q=0.9,en;q=0.8"}, "de"},
		{"en", []string{"pt-BR"}, "pt"},
		{"fr", []string{"", "sv-SE,sv;q=0.9"}, "fr"}, // nothing matches: the app's default
		{"en", []string{"ja", "de"}, "ja"},           // the setting before the browser
		{"xx", []string{"not a language"}, "en"},
		{"en", []string{"ar-EG"}, "ar"},
		{"fr", []string{"gl"}, "fr"}, // Galician is not Spanish enough: the app's
	} {
		if got := Match(c.fallback, c.wants...).Tag; got != c.want {
			t.Errorf("Match(%q, %q) = %s, want %s", c.fallback, c.wants, got, c.want)
		}
	}
}
