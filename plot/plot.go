// Package plot draws small, dependency-free PNG charts for training runs and
// result tables: line charts (loss curves, metrics over steps) and grouped bar
// charts (accuracy per question type per model).
//
// Charts are Width×Height pixels, white background, text in the 7×13 bitmap
// font of golang.org/x/image/font/basicfont, and series coloured from a fixed
// colour-blind-friendly palette (Okabe–Ito). Files are written atomically: the
// PNG is encoded into a temporary file in the destination folder and renamed
// into place, so a failed call never leaves a partial (or any new) file.
package plot

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Size of every chart, in pixels.
const (
	Width  = 900
	Height = 500
)

// Palette is the fixed, colour-blind-friendly (Okabe–Ito) series palette, in
// the order series are coloured. With more series than colours the palette
// repeats: repeated line series are dashed (then dotted, …) and repeated bar
// series are hatched, so every series stays distinguishable.
var Palette = []color.RGBA{
	{0x00, 0x72, 0xB2, 0xFF}, // blue
	{0xE6, 0x9F, 0x00, 0xFF}, // orange
	{0x00, 0x9E, 0x73, 0xFF}, // bluish green
	{0xD5, 0x5E, 0x00, 0xFF}, // vermillion
	{0xCC, 0x79, 0xA7, 0xFF}, // reddish purple
	{0x56, 0xB4, 0xE9, 0xFF}, // sky blue
	{0x00, 0x00, 0x00, 0xFF}, // black
	{0xF0, 0xE4, 0x42, 0xFF}, // yellow
}

// Neutral colours; none of them is in Palette.
var (
	colBackground = color.RGBA{0xFF, 0xFF, 0xFF, 0xFF}
	colText       = color.RGBA{0x22, 0x22, 0x22, 0xFF}
	colAxis       = color.RGBA{0x55, 0x55, 0x55, 0xFF}
	colGrid       = color.RGBA{0xE3, 0xE3, 0xE3, 0xFF}
	colZero       = color.RGBA{0x88, 0x88, 0x88, 0xFF}
	colErrorBar   = color.RGBA{0x33, 0x33, 0x33, 0xFF}
)

// seriesColor returns the colour of series i and which repetition of the
// palette it belongs to (0 for the first len(Palette) series).
func seriesColor(i int) (color.RGBA, int) {
	return Palette[i%len(Palette)], i / len(Palette)
}

var face = basicfont.Face7x13

const (
	textH      = 13 // line height of face
	textAscent = 11
	charW      = 7 // advance of every glyph in face
)

// Layout shared by both chart kinds.
const (
	marginX     = 10 // left/right image margin
	titleTop    = 8
	yLabelTop   = titleTop + textH + 6
	plotTop     = yLabelTop + textH + 12
	plotBottom  = Height - 50 // row of the x axis
	tickLen     = 4
	legendGap   = 20 // between plot area and legend
	legendRowH  = 18
	legendSwW   = 24 // swatch width
	legendMaxCh = 24 // legend names are abbreviated beyond this many characters
)

// ---------------------------------------------------------------- text

// clean replaces characters the font cannot draw and control characters.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		if r < ' ' {
			return -1
		}
		if _, ok := face.GlyphAdvance(r); !ok {
			return '?'
		}
		return r
	}, s)
}

func textWidth(s string) int { return utf8.RuneCountInString(s) * charW }

// truncate abbreviates s with "..." so that it is at most maxW pixels wide.
func truncate(s string, maxW int) string {
	if textWidth(s) <= maxW {
		return s
	}
	n := maxW/charW - 3
	if n < 1 {
		// No room for an ellipsis: keep what fits.
		n = max(maxW/charW, 0)
		return string([]rune(s)[:n])
	}
	return strings.TrimRight(string([]rune(s)[:n]), " ") + "..."
}

// wrap breaks s into at most maxLines lines of at most maxW pixels. It breaks
// at spaces (which are dropped) and after '_', '-' and '/' (which are kept);
// what does not fit is abbreviated with "...".
func wrap(s string, maxW, maxLines int) []string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" || maxLines < 1 {
		return nil
	}
	// Split into words, each remembering whether a space preceded it.
	type word struct {
		text  string
		space bool
	}
	var words []word
	start, space := 0, false
	for i, r := range s {
		switch r {
		case ' ':
			if i > start {
				words = append(words, word{s[start:i], space})
			}
			start, space = i+1, true
		case '_', '-', '/':
			words = append(words, word{s[start : i+1], space})
			start, space = i+1, false
		}
	}
	if start < len(s) {
		words = append(words, word{s[start:], space})
	}

	var lines []string
	cur := ""
	for _, w := range words {
		if cur == "" {
			cur = w.text
			continue
		}
		cand := cur + w.text
		if w.space {
			cand = cur + " " + w.text
		}
		if textWidth(cand) <= maxW {
			cur = cand
		} else {
			lines = append(lines, cur)
			cur = w.text
		}
	}
	lines = append(lines, cur)

	if len(lines) > maxLines {
		rest := strings.Join(lines[maxLines-1:], " ")
		lines = lines[:maxLines]
		lines[maxLines-1] = rest
		if textWidth(rest) <= maxW { // cannot happen with greedy filling; be safe
			lines[maxLines-1] = truncate(rest+"...", maxW)
		}
	}
	for i := range lines {
		lines[i] = truncate(lines[i], maxW)
	}
	return lines
}

// ---------------------------------------------------------------- canvas

type canvas struct {
	img  *image.RGBA
	mask *image.Alpha // scratch coverage mask for anti-aliased shapes
}

func newCanvas() *canvas {
	c := &canvas{
		img:  image.NewRGBA(image.Rect(0, 0, Width, Height)),
		mask: image.NewAlpha(image.Rect(0, 0, Width, Height)),
	}
	draw.Draw(c.img, c.img.Bounds(), image.NewUniform(colBackground), image.Point{}, draw.Src)
	return c
}

// text draws s with its top-left corner at (x, top).
func (c *canvas) text(x, top int, s string, col color.Color) {
	d := font.Drawer{
		Dst:  c.img,
		Src:  image.NewUniform(col),
		Face: face,
		Dot:  fixed.P(x, top+textAscent),
	}
	d.DrawString(s)
}

// boldText draws s twice, one pixel apart.
func (c *canvas) boldText(x, top int, s string, col color.Color) {
	c.text(x, top, s, col)
	c.text(x+1, top, s, col)
}

// fill fills r (clipped to the image) with col.
func (c *canvas) fill(r image.Rectangle, col color.Color) {
	draw.Draw(c.img, r.Intersect(c.img.Bounds()), image.NewUniform(col), image.Point{}, draw.Src)
}

func (c *canvas) hline(x0, x1, y int, col color.Color) {
	c.fill(image.Rect(min(x0, x1), y, max(x0, x1)+1, y+1), col)
}

func (c *canvas) vline(x, y0, y1 int, col color.Color) {
	c.fill(image.Rect(x, min(y0, y1), x+1, max(y0, y1)+1), col)
}

// clearMask zeroes the coverage mask inside r.
func (c *canvas) clearMask(r image.Rectangle) {
	draw.Draw(c.mask, r, image.Transparent, image.Point{}, draw.Src)
}

// cover raises the mask at (x, y) to coverage a in [0, 1].
func (c *canvas) cover(x, y int, a float64) {
	if a <= 0 {
		return
	}
	v := uint8(math.Round(min(a, 1) * 255))
	i := c.mask.PixOffset(x, y)
	if c.mask.Pix[i] < v {
		c.mask.Pix[i] = v
	}
}

// dash is an on/off pattern in pixels along a line; on == 0 means solid.
type dash struct{ on, off float64 }

var dashes = []dash{{0, 0}, {9, 5}, {2.5, 4}, {14, 4}}

// segment adds to the mask, inside clip, a line of half-width hw from (x0, y0)
// to (x1, y1) (pixel centres are at integer+0.5), with round caps. pos is the
// distance along the polyline at which the segment starts, for dashing.
func (c *canvas) segment(x0, y0, x1, y1, hw float64, d dash, pos float64, clip image.Rectangle) {
	dx, dy := x1-x0, y1-y0
	l2 := dx*dx + dy*dy
	l := math.Sqrt(l2)
	pad := hw + 1
	r := image.Rect(
		int(math.Floor(min(x0, x1)-pad)), int(math.Floor(min(y0, y1)-pad)),
		int(math.Ceil(max(x0, x1)+pad)), int(math.Ceil(max(y0, y1)+pad)),
	).Intersect(clip)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		py := float64(y) + 0.5
		for x := r.Min.X; x < r.Max.X; x++ {
			px := float64(x) + 0.5
			t := 0.0
			if l2 > 0 {
				t = min(max(((px-x0)*dx+(py-y0)*dy)/l2, 0), 1)
			}
			if d.on > 0 && math.Mod(pos+t*l, d.on+d.off) >= d.on {
				continue
			}
			ex, ey := px-(x0+t*dx), py-(y0+t*dy)
			c.cover(x, y, hw+0.5-math.Sqrt(ex*ex+ey*ey))
		}
	}
}

// disc adds to the mask, inside clip, a filled circle of radius rad.
func (c *canvas) disc(cx, cy, rad float64, clip image.Rectangle) {
	r := image.Rect(
		int(math.Floor(cx-rad-1)), int(math.Floor(cy-rad-1)),
		int(math.Ceil(cx+rad+1)), int(math.Ceil(cy+rad+1)),
	).Intersect(clip)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			ex, ey := float64(x)+0.5-cx, float64(y)+0.5-cy
			c.cover(x, y, rad+0.5-math.Sqrt(ex*ex+ey*ey))
		}
	}
}

// paintMask composites col through the mask inside r, then clears the mask there.
func (c *canvas) paintMask(r image.Rectangle, col color.Color) {
	r = r.Intersect(c.img.Bounds())
	draw.DrawMask(c.img, r, image.NewUniform(col), image.Point{}, c.mask, r.Min, draw.Over)
	c.clearMask(r)
}

// ---------------------------------------------------------------- axes

// axis maps data values in [lo, hi] linearly onto pixel positions [p0, p1]
// (p0 is the pixel of lo; for a vertical axis p0 > p1).
type axis struct {
	lo, hi float64
	p0, p1 int
	ticks  []float64
	labels []string
}

// pos returns the pixel coordinate of v as a float: gridline and bar edges
// for value v sit at round(pos(v)); a point of value v is drawn centred at
// pos(v)+0.5, the centre of that pixel.
func (a *axis) pos(v float64) float64 {
	return float64(a.p0) + (v-a.lo)/(a.hi-a.lo)*float64(a.p1-a.p0)
}

func (a *axis) pix(v float64) int { return int(math.Round(a.pos(v))) }

// niceTicks returns a 1-2-5 step close to (hi-lo)/target and the range
// [lo, hi] widened to multiples of it, with the tick values.
func niceTicks(lo, hi float64, target int) (nlo, nhi, step float64, ticks []float64) {
	raw := (hi - lo) / float64(max(target, 1))
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	switch n := raw / mag; {
	case n <= 1:
		step = mag
	case n <= 2:
		step = 2 * mag
	case n <= 5:
		step = 5 * mag
	default:
		step = 10 * mag
	}
	k0 := math.Floor(lo/step + 1e-9)
	k1 := math.Ceil(hi/step - 1e-9)
	for k := k0; k <= k1; k++ {
		ticks = append(ticks, k*step)
	}
	return k0 * step, k1 * step, step, ticks
}

// tickLabels formats tick values with as many decimals as the step needs.
func tickLabels(ticks []float64, step float64) []string {
	dec := max(0, int(math.Ceil(-math.Log10(step)-1e-9)))
	big := 0.0
	for _, t := range ticks {
		big = max(big, math.Abs(t))
	}
	out := make([]string, len(ticks))
	for i, t := range ticks {
		t = math.Round(t/step) * step
		var s string
		if big >= 1e6 || dec > 5 {
			// Scientific: as many mantissa digits as the largest tick needs
			// to tell ticks apart, trailing zeros trimmed: "5e5", "1.5e6".
			p := max(0, int(math.Floor(math.Log10(big))-math.Floor(math.Log10(step))))
			m, e, _ := strings.Cut(strconv.FormatFloat(t, 'e', p, 64), "e")
			if strings.Contains(m, ".") {
				m = strings.TrimRight(strings.TrimRight(m, "0"), ".")
			}
			exp, _ := strconv.Atoi(e)
			s = m + "e" + strconv.Itoa(exp)
		} else {
			s = strconv.FormatFloat(t, 'f', dec, 64)
		}
		if math.Abs(t) < step*1e-6 {
			s = "0" // not "-0", "0.00" or "0e0"
		}
		out[i] = s
	}
	return out
}

// padRange makes an empty or degenerate [lo, hi] non-empty.
func padRange(lo, hi float64) (float64, float64) {
	if hi > lo {
		return lo, hi
	}
	d := math.Abs(lo) * 0.1
	if d == 0 {
		d = 1
	}
	return lo - d, hi + d
}

// fitTicks picks the densest 1-2-5 ticks for [lo, hi] whose labels keep at
// least minGap pixels apart along an axis of length pixels; label size is
// measured by size (width for x, height for y).
func fitTicks(lo, hi float64, length, minGap, maxTarget int, size func(string) int) (nlo, nhi float64, ticks []float64, labels []string) {
	for target := maxTarget; target >= 1; target-- {
		var step float64
		nlo, nhi, step, ticks = niceTicks(lo, hi, target)
		labels = tickLabels(ticks, step)
		biggest := 0
		for _, l := range labels {
			biggest = max(biggest, size(l))
		}
		if len(ticks) < 2 || float64(length)/float64(len(ticks)-1) >= float64(biggest+minGap) {
			return nlo, nhi, ticks, labels
		}
	}
	return nlo, nhi, ticks, labels
}

func checkRange(lo, hi float64) error {
	if math.IsInf(hi-lo, 0) || math.IsNaN(hi-lo) {
		return fmt.Errorf("plot: data range [%g, %g] too large to draw", lo, hi)
	}
	return nil
}

// yAxis builds the vertical axis for [lo, hi] between plotTop and plotBottom.
func yAxis(lo, hi float64) *axis {
	lo, hi = padRange(lo, hi)
	nlo, nhi, ticks, labels := fitTicks(lo, hi, plotBottom-plotTop, 22, 8, func(string) int { return textH })
	return &axis{lo: nlo, hi: nhi, p0: plotBottom, p1: plotTop, ticks: ticks, labels: labels}
}

// leftMargin is the x of the y axis: room for the y tick labels.
func leftMargin(y *axis) int {
	w := 0
	for _, l := range y.labels {
		w = max(w, textWidth(l))
	}
	return max(marginX+w+tickLen+4, 40)
}

// drawFrame draws the title, y label, y gridlines and tick labels, x axis
// line and y axis line. x gridlines and labels are drawn by the caller.
func (c *canvas) drawFrame(title, yLabel string, y *axis, left, right int) {
	title = truncate(clean(title), Width-2*marginX)
	c.boldText((Width-textWidth(title))/2, titleTop, title, colText)
	yLabel = truncate(clean(yLabel), Width-2*marginX)
	c.text(marginX, yLabelTop, yLabel, colText)

	for i, t := range y.ticks {
		py := y.pix(t)
		c.hline(left+1, right, py, colGrid)
		c.hline(left-tickLen, left-1, py, colAxis)
		l := y.labels[i]
		c.text(left-tickLen-3-textWidth(l), py-textH/2-1, l, colText)
	}
	c.vline(left, plotTop, plotBottom, colAxis)
	c.hline(left, right, plotBottom, colAxis)
}

// legendEntry is drawn by a callback at the swatch position.
type legendEntry struct {
	name   string
	swatch func(x, midY int)
}

func legendWidth(names []string) int {
	w := 0
	for _, n := range names {
		w = max(w, textWidth(truncate(clean(n), legendMaxCh*charW)))
	}
	return legendSwW + 6 + w
}

// drawLegend draws entries top-down from (x, plotTop); entries that do not
// fit are summarised as "+N more".
func (c *canvas) drawLegend(x int, entries []legendEntry) {
	maxRows := (plotBottom - plotTop) / legendRowH
	for i, e := range entries {
		top := plotTop + i*legendRowH
		if i == maxRows-1 && len(entries) > maxRows {
			c.text(x, top, fmt.Sprintf("+%d more", len(entries)-i), colText)
			return
		}
		e.swatch(x, top+legendRowH/2)
		c.text(x+legendSwW+6, top+legendRowH/2-textH/2-1, truncate(clean(e.name), legendMaxCh*charW), colText)
	}
}

func seriesName(name string, i int) string {
	if strings.TrimSpace(name) == "" {
		return fmt.Sprintf("series %d", i+1)
	}
	return name
}

// ---------------------------------------------------------------- output

// writePNG encodes img to path atomically: into a temporary file in the same
// folder, then renamed over path. On error no file is left behind.
func writePNG(path string, img image.Image) (err error) {
	if path == "" {
		return errors.New("plot: empty path")
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = png.Encode(f, img); err != nil {
		return fmt.Errorf("plot: encoding %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
