package theme

import (
	"fmt"
	"math"
	"testing"
)

func TestContrast(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want float64
	}{
		{"#000000", "#ffffff", 21},
		{"#ffffff", "#ffffff", 1},
		{"#767676", "#ffffff", 4.54}, // the lightest grey that passes AA on white
		{"#2457d6", "#ffffff", 6.16},
	} {
		if got := Contrast(c.a, c.b); math.Abs(got-c.want) > 0.01 {
			t.Errorf("Contrast(%s, %s) = %.2f, want %.2f", c.a, c.b, got, c.want)
		}
	}
}

// Every colour an owner can pick gets text that passes AA on it.
func TestTextOnIsAlwaysAA(t *testing.T) {
	worst := 21.0
	for r := 0; r < 256; r += 5 {
		for g := 0; g < 256; g += 5 {
			for b := 0; b < 256; b += 5 {
				bg := fmt.Sprintf("#%02x%02x%02x", r, g, b)
				worst = min(worst, Contrast(bg, TextOn(bg)))
			}
		}
	}
	if worst < 4.5 {
		t.Fatalf("the worst contrast is %.2f:1, below AA's 4.5:1", worst)
	}
	if got := TextOn("#ffd400"); got != "#000000" {
		t.Errorf("TextOn(yellow) = %s, want black", got)
	}
	if got := TextOn("#2457d6"); got != "#ffffff" {
		t.Errorf("TextOn(blue) = %s, want white", got)
	}
}
