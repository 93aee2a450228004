package bench

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"strings"
)

// Chart draws the results as grouped bars, one group per figure, one bar
// per variant, heights as the ratio to the baseline (baseline = 100 %),
// each bar labelled with its ratio and its raw median. Hand-drawn with a
// built-in 5x7 font so that the module needs no imaging dependency.
func (r *Results) Chart() *image.RGBA {
	const (
		w, h          = 1200, 560
		scale         = 2
		left, right   = 90, 20
		top, bottom   = 110, 80
		plotW, plotH  = w - left - right, h - top - bottom
		maxPercent    = 125
		gridStepPct   = 25
		groupGap      = 40
		barGapInGroup = 6
	)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fill(img, img.Bounds(), color.RGBA{255, 255, 255, 255})
	black := color.RGBA{0, 0, 0, 255}
	grey := color.RGBA{210, 210, 210, 255}

	title := fmt.Sprintf("MAP-T HEADLINE BENCHMARK - LINUX %s - %s", r.Kernel, r.Date.UTC().Format("2006-01-02"))
	drawText(img, left, 14, title, scale, black)
	drawText(img, left, 40, fmt.Sprintf("RATIO TO %s (MEDIAN OF %d PAIRED RUNS OF %s), RAW MEDIAN BELOW", strings.ToUpper(r.baseline()), r.Reps, r.Duration), scale, black)

	top0 := func(pct float64) int { // y of a percentage
		if pct > maxPercent {
			pct = maxPercent
		}
		return top + plotH - int(pct*float64(plotH)/maxPercent)
	}
	for p := 0; p <= maxPercent; p += gridStepPct {
		y := top0(float64(p))
		fill(img, image.Rect(left, y, left+plotW, y+1), grey)
		label := fmt.Sprintf("%d%%", p)
		drawText(img, left-8-textWidth(label, scale), y-7, label, scale, black)
	}
	fill(img, image.Rect(left, top, left+1, top+plotH+1), black)
	fill(img, image.Rect(left, top+plotH, left+plotW, top+plotH+1), black)

	// Legend, top right.
	lx := w - right - len(r.Variants)*150
	for i, v := range r.Variants {
		x := lx + i*150
		fill(img, image.Rect(x, 72, x+20, 92), palette(i))
		drawText(img, x+26, 75, strings.ToUpper(v), scale, black)
	}

	n := len(Figures)
	groupW := (plotW - groupGap*(n+1)) / n
	nv := max(len(r.Variants), 1)
	barW := (groupW - barGapInGroup*(nv-1)) / nv
	// Labels over narrow bars (many variants) in the small font.
	ls := scale
	if textWidth("100%", scale) > barW+barGapInGroup {
		ls = 1
	}
	for gi, f := range Figures {
		gx := left + groupGap + gi*(groupW+groupGap)
		for vi, v := range r.Variants {
			x := gx + vi*(barW+barGapInGroup)
			m, ok := r.Median(v, f)
			q, okq := r.Ratio(v, f)
			if !ok || !okq {
				drawText(img, x+4, top+plotH-20, "N/A", scale, black)
				continue
			}
			y := top0(100 * q)
			fill(img, image.Rect(x, y, x+barW, top+plotH), palette(vi))
			pct := fmt.Sprintf("%.0f%%", 100*q)
			raw := formatValue(m.Value)
			ly := y - 36
			if ly < top-30 {
				ly = top - 30
			}
			drawText(img, x+(barW-textWidth(pct, ls))/2, ly, pct, ls, black)
			drawText(img, x+(barW-textWidth(raw, ls))/2, ly+9*ls, raw, ls, black)
		}
		name := strings.ToUpper(f.Name)
		unit := "(" + strings.ToUpper(f.Unit) + ")"
		drawText(img, gx+(groupW-textWidth(name, scale))/2, top+plotH+12, name, scale, black)
		drawText(img, gx+(groupW-textWidth(unit, scale))/2, top+plotH+32, unit, scale, black)
	}
	return img
}

// WriteChart encodes the chart as PNG.
func (r *Results) WriteChart(w io.Writer) error {
	if err := png.Encode(w, r.Chart()); err != nil {
		return fmt.Errorf("bench: encode chart: %w", err)
	}
	return nil
}

func (r *Results) baseline() string {
	if len(r.Variants) == 0 {
		return "baseline"
	}
	return r.Variants[0]
}

// palette gives variant i its colour: grey for the baseline, then green,
// purple, blue and orange.
func palette(i int) color.RGBA {
	p := []color.RGBA{{150, 150, 150, 255}, {44, 160, 44, 255}, {148, 103, 189, 255}, {31, 119, 180, 255}, {255, 127, 14, 255}}
	return p[i%len(p)]
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// textWidth is the width in pixels of s drawn at scale.
func textWidth(s string, scale int) int { return len(s) * 6 * scale }

// drawText draws s (upper case; other runes are drawn as their upper-case
// form or a box) with its top-left corner at x, y.
func drawText(img *image.RGBA, x, y int, s string, scale int, c color.RGBA) {
	for _, ch := range strings.ToUpper(s) {
		g, ok := font5x7[ch]
		if !ok {
			g = [7]byte{0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F}
		}
		for row, bits := range g {
			for col := 0; col < 5; col++ {
				if bits&(0x10>>col) != 0 {
					fill(img, image.Rect(x+col*scale, y+row*scale, x+(col+1)*scale, y+(row+1)*scale), c)
				}
			}
		}
		x += 6 * scale
	}
}

// font5x7 has a 5x7 glyph per character the chart uses; each byte is a
// row, bit 4 the leftmost pixel.
var font5x7 = map[rune][7]byte{
	' ': {},
	'0': {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E},
	'1': {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
	'2': {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F},
	'3': {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
	'4': {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02},
	'5': {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
	'6': {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E},
	'7': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
	'8': {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E},
	'9': {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
	'A': {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
	'B': {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E},
	'C': {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E},
	'D': {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C},
	'E': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F},
	'F': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10},
	'G': {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F},
	'H': {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
	'I': {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E},
	'J': {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},
	'K': {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11},
	'L': {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F},
	'M': {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11},
	'N': {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},
	'O': {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},
	'P': {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10},
	'Q': {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D},
	'R': {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11},
	'S': {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E},
	'T': {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},
	'U': {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},
	'V': {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04},
	'W': {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A},
	'X': {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11},
	'Y': {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04},
	'Z': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F},
	'.': {0, 0, 0, 0, 0, 0x0C, 0x0C},
	',': {0, 0, 0, 0, 0x0C, 0x04, 0x08},
	'-': {0, 0, 0, 0x1F, 0, 0, 0},
	'+': {0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0},
	'=': {0, 0, 0x1F, 0, 0x1F, 0, 0},
	'_': {0, 0, 0, 0, 0, 0, 0x1F},
	'>': {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08},
	'<': {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02},
	'/': {0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10},
	'%': {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03},
	':': {0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0},
	'(': {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02},
	')': {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08},
}
