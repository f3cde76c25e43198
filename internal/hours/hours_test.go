package hours

import (
	"testing"
	"time"
)

func TestWeek(t *testing.T) {
	w, err := Parse("mon=09:00-17:30,fri=10:00-24:00")
	if err != nil {
		t.Fatal(err)
	}
	if got := w.String(); got != "mon=09:00-17:30,fri=10:00-24:00" {
		t.Errorf("String() = %q", got)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		at   string // UTC
		want bool
	}{
		{"2026-12-07T07:59:00Z", false}, // Monday 08:59 in Berlin
		{"2026-12-07T08:00:00Z", true},  // 09:00
		{"2026-12-07T16:29:00Z", true},  // 17:29
		{"2026-12-07T16:30:00Z", false}, // 17:30
		{"2026-12-08T10:00:00Z", false}, // Tuesday: closed
		{"2026-12-11T22:59:00Z", true},  // Friday 23:59
		{"2026-12-11T23:00:00Z", false}, // Saturday 00:00
	} {
		at, _ := time.Parse(time.RFC3339, c.at)
		if got := w.OpenAt(at, berlin); got != c.want {
			t.Errorf("open at %s = %v, want %v", c.at, got, c.want)
		}
	}
	if !(Week{}).OpenAt(time.Now(), time.UTC) {
		t.Error("no hours set must mean always open")
	}
	closed, err := Parse("none")
	if err != nil || !closed.Set || closed.OpenAt(time.Now(), time.UTC) || closed.String() != "none" {
		t.Errorf("closed every day: %+v %v", closed, err)
	}
	for _, bad := range []string{"mon=17:00-09:00", "mon=9-17", "funday=09:00-17:00", "mon=09:00-24:30", "mon 09:00-17:00", "mon=09:60-10:00"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
