// Package hours is an app's weekly business hours: when its team is
// usually there, in the app's time zone.
package hours

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Span is one day's hours, in minutes since midnight: From until To.
type Span struct {
	On       bool
	From, To int
}

// Week is the hours of each day, indexed by time.Weekday (Sunday is 0).
// A Week that is not Set means no hours were given: always open.
type Week struct {
	Set  bool
	Days [7]Span
}

var dayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// DayName is the short English name of a weekday, as the stored form
// writes it.
func DayName(d time.Weekday) string { return dayNames[d] }

// Parse reads hours as String writes them: "mon=09:00-17:00,tue=…", the
// days without hours left out; "" is no hours (always open).
func Parse(s string) (Week, error) {
	var w Week
	s = strings.TrimSpace(s)
	if s == "" {
		return w, nil
	}
	w.Set = true
	if s == "none" {
		return w, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		name, span, ok := strings.Cut(strings.TrimSpace(part), "=")
		day := -1
		for i, n := range dayNames {
			if n == strings.ToLower(name) {
				day = i
			}
		}
		if !ok || day < 0 {
			return Week{}, fmt.Errorf("hours: %q is not day=HH:MM-HH:MM", part)
		}
		from, to, ok := strings.Cut(span, "-")
		if !ok {
			return Week{}, fmt.Errorf("hours: %q is not day=HH:MM-HH:MM", part)
		}
		sp, err := NewSpan(from, to)
		if err != nil {
			return Week{}, err
		}
		w.Days[day] = sp
	}
	return w, nil
}

// NewSpan reads a day's hours from two times, HH:MM (24:00 is the end of
// the day).
func NewSpan(from, to string) (Span, error) {
	f, err := minutes(from)
	if err != nil {
		return Span{}, err
	}
	t, err := minutes(to)
	if err != nil {
		return Span{}, err
	}
	if t <= f {
		return Span{}, errors.New("hours: a day's hours end after they start (for hours past midnight, give the next day its own)")
	}
	return Span{On: true, From: f, To: t}, nil
}

func minutes(s string) (int, error) {
	var h, m int
	if n, err := fmt.Sscanf(strings.TrimSpace(s), "%d:%d", &h, &m); n != 2 || err != nil || h < 0 || m < 0 || m > 59 || h > 24 || h == 24 && m > 0 {
		return 0, fmt.Errorf("hours: %q is not a time like 09:00", s)
	}
	return h*60 + m, nil
}

// Clock writes minutes since midnight as HH:MM.
func Clock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// String is the stored form of w.
func (w Week) String() string {
	if !w.Set {
		return ""
	}
	var parts []string
	for day, sp := range w.Days {
		if sp.On {
			parts = append(parts, dayNames[day]+"="+Clock(sp.From)+"-"+Clock(sp.To))
		}
	}
	if len(parts) == 0 {
		return "none" // set, and closed every day
	}
	return strings.Join(parts, ",")
}

// OpenAt reports whether t falls within the hours, read in loc.
func (w Week) OpenAt(t time.Time, loc *time.Location) bool {
	if !w.Set {
		return true
	}
	t = t.In(loc)
	sp := w.Days[t.Weekday()]
	m := t.Hour()*60 + t.Minute()
	return sp.On && m >= sp.From && m < sp.To
}
