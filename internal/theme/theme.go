// Package theme keeps an owner's colour readable: whatever colour they
// pick, text on it is black or white, whichever contrasts more, which is
// always at least 4.58:1 (WCAG AA asks 4.5:1).
package theme

import (
	"math"
	"strconv"
)

// TextOn returns the text colour for a background of hex (#rrggbb):
// #ffffff or #000000, whichever contrasts more.
func TextOn(hex string) string {
	if Contrast(hex, "#ffffff") >= Contrast(hex, "#000000") {
		return "#ffffff"
	}
	return "#000000"
}

// Contrast is the WCAG 2 contrast ratio of two #rrggbb colours, from 1
// to 21.
func Contrast(a, b string) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// luminance is the relative luminance of #rrggbb (WCAG 2, sRGB).
func luminance(hex string) float64 {
	if len(hex) != 7 || hex[0] != '#' {
		return 0
	}
	var l float64
	for i, weight := range []float64{0.2126, 0.7152, 0.0722} {
		v, err := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		if err != nil {
			return 0
		}
		c := float64(v) / 255
		if c <= 0.04045 {
			c /= 12.92
		} else {
			c = math.Pow((c+0.055)/1.055, 2.4)
		}
		l += weight * c
	}
	return l
}
