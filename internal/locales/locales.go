// Package locales holds the widget's translations: one JSON file per
// language, named by its BCP 47 tag (de.json, pt-BR.json). Adding a
// language is adding a file: every key of en.json, in the same {name}
// placeholders; "_name" is the language's own name and "_dir" "ltr" or
// "rtl". A test checks every file against en.json.
package locales

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"golang.org/x/text/language"
)

//go:embed *.json
var files embed.FS

// Catalog is one language's strings.
type Catalog struct {
	Tag string
	// JSON is the file as served to the frame; Hash names this version.
	JSON    []byte
	Hash    string
	Strings map[string]string
}

// Dir is "rtl" for a language written right to left, else "ltr".
func (c *Catalog) Dir() string { return c.Strings["_dir"] }

// T is the string for key, in English when this language lacks it.
func (c *Catalog) T(key string) string {
	if s, ok := c.Strings[key]; ok {
		return s
	}
	return english.Strings[key]
}

var (
	catalogs = map[string]*Catalog{}
	tags     []string
	english  *Catalog
)

func init() {
	if err := load(); err != nil {
		panic(err)
	}
}

func load() error {
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return err
	}
	for _, e := range entries {
		tag := strings.TrimSuffix(e.Name(), ".json")
		b, err := files.ReadFile(e.Name())
		if err != nil {
			return err
		}
		c := &Catalog{Tag: tag, Strings: map[string]string{}}
		if err := json.Unmarshal(b, &c.Strings); err != nil {
			return fmt.Errorf("locales: %s: %w", e.Name(), err)
		}
		// Compacted, so what is served carries no indentation.
		c.JSON, _ = json.Marshal(c.Strings)
		sum := sha256.Sum256(c.JSON)
		c.Hash = hex.EncodeToString(sum[:6])
		catalogs[tag] = c
		tags = append(tags, tag)
	}
	slices.Sort(tags)
	english = catalogs["en"]
	if english == nil {
		return fmt.Errorf("locales: en.json is missing")
	}
	return nil
}

// Tags lists the languages there are, sorted.
func Tags() []string { return slices.Clone(tags) }

// Get returns the catalog of exactly tag.
func Get(tag string) (*Catalog, bool) {
	c, ok := catalogs[tag]
	return c, ok
}

// Match picks the catalog for what the user asked (a locale setting, or
// the browser's Accept-Language, or both, in order of preference): the
// first language asked for that there is a file of, by its language
// (pt-BR is served pt.json), else the app's default, else English. A
// related language is not enough: Galician is not served Spanish.
func Match(fallback string, wants ...string) *Catalog {
	for _, want := range wants {
		if want == "" {
			continue
		}
		prefs, _, err := language.ParseAcceptLanguage(want)
		if err != nil {
			continue
		}
		for _, p := range prefs {
			if c, ok := catalogs[p.String()]; ok { // a file of its own, pt-BR.json
				return c
			}
			base, _ := p.Base()
			if c, ok := catalogs[base.String()]; ok {
				return c
			}
		}
	}
	if c, ok := catalogs[fallback]; ok {
		return c
	}
	return english
}
