package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// axePath is where .ci/run installs axe-core (npm ci --prefix e2e).
const axePath = "node_modules/axe-core/axe.min.js"

var axeSource = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile(axePath)
	return string(b), err
})

// wcagTags are the rules the pages must pass: WCAG 2.0, 2.1 and 2.2, A and AA.
const wcagTags = `['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22a', 'wcag22aa']`

type axeViolation struct {
	ID, Impact, Help string
	Nodes            []struct {
		Target         []any
		FailureSummary string
	}
}

// checkA11y runs axe-core on the document of ctx (only within selector, if
// given: a host page's launcher) and fails the test on any violation of
// the WCAG A and AA rules, naming the rule and the elements.
func checkA11y(t *testing.T, ctx context.Context, what string, selector ...string) {
	t.Helper()
	src, err := axeSource()
	if err != nil {
		t.Fatalf("axe-core is not installed (%v): run `npm ci --prefix e2e`, as .ci/run does", err)
	}
	context := "document"
	if len(selector) > 0 {
		context = fmt.Sprintf("{include: [[%q]]}", selector[0])
	}
	// DevTools evaluation is not the page's script: the page's CSP does not
	// apply, so axe runs in Parley's strict pages too.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`window.axe || (function () { `+src+` })(), undefined`)); err != nil {
		t.Fatalf("%s: loading axe-core: %v", what, err)
	}
	// After the page's fade-ins end: a message halfway in has half its
	// contrast, which says nothing about the page at rest.
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]axeViolation](`Promise.all(document.getAnimations().map(a => a.finished.catch(() => {})))
		.then(() => axe.run(`+context+`, {runOnly: {type: 'tag', values: `+wcagTags+`}, resultTypes: ['violations'], iframes: false}))
		.then(r => r.violations)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: running axe-core: %v", what, err)
	}
	for _, v := range got {
		var where []string
		for _, n := range v.Nodes {
			where = append(where, fmt.Sprint(n.Target)+": "+strings.ReplaceAll(n.FailureSummary, "\n", " "))
		}
		t.Errorf("%s: accessibility: %s (%s, %s):\n\t%s", what, v.ID, v.Impact, v.Help, strings.Join(where, "\n\t"))
	}
}
