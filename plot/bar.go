package plot

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
)

// BarGroup is one category of a GroupedBarChart (e.g. a question type), with
// one value per series (e.g. per model). Errors, when not nil, holds a ±error
// per value, drawn as an error bar; it must have the same length as Values.
// A NaN or ±Inf value is a missing bar; a NaN error is no error bar.
type BarGroup struct {
	Label  string
	Values []float64
	Errors []float64
}

const (
	maxBarPitch    = 80 // widest bar, in pixels, gap included
	categoryLines  = 2  // category labels wrap onto at most this many lines
	groupFillRatio = 0.8
)

// GroupedBarChart draws one group of bars per category, one bar per series
// (coloured from Palette, named in the legend by seriesNames), and writes it
// as a Width×Height PNG to path. The value axis starts at 0, or below 0 when
// there are negative values (bars then hang from a zero line). Long category
// labels are wrapped onto two lines and abbreviated with "...". It is an error
// to pass no series or no groups, a group whose Values (or non-nil Errors) do
// not match seriesNames in length, a negative or infinite error, or no finite
// value at all; then no file is written.
func GroupedBarChart(path, title, yLabel string, seriesNames []string, groups []BarGroup) error {
	img, _, err := renderBarChart(title, yLabel, seriesNames, groups)
	if err != nil {
		return err
	}
	return writePNG(path, img)
}

// renderBarChart draws the chart and returns its value axis (for tests).
func renderBarChart(title, yLabel string, seriesNames []string, groups []BarGroup) (*image.RGBA, *axis, error) {
	ns, ng := len(seriesNames), len(groups)
	if ns == 0 {
		return nil, nil, errors.New("plot: GroupedBarChart needs at least one series name")
	}
	if ng == 0 {
		return nil, nil, errors.New("plot: GroupedBarChart needs at least one group")
	}
	lo, hi := 0.0, 0.0
	have := false
	for _, g := range groups {
		if len(g.Values) != ns {
			return nil, nil, fmt.Errorf("plot: group %q has %d values for %d series", g.Label, len(g.Values), ns)
		}
		if g.Errors != nil && len(g.Errors) != ns {
			return nil, nil, fmt.Errorf("plot: group %q has %d errors for %d series", g.Label, len(g.Errors), ns)
		}
		for s, v := range g.Values {
			e := 0.0
			if g.Errors != nil && !math.IsNaN(g.Errors[s]) {
				e = g.Errors[s]
				if e < 0 || math.IsInf(e, 0) {
					return nil, nil, fmt.Errorf("plot: group %q, series %q: invalid error %g", g.Label, seriesNames[s], e)
				}
			}
			if !finite(v) {
				continue
			}
			have = true
			// The error bar on the far side of zero counts; the other may be clipped.
			if v >= 0 {
				hi = max(hi, v+e)
			} else {
				lo = min(lo, v-e)
			}
		}
	}
	if !have {
		return nil, nil, errors.New("plot: GroupedBarChart has no finite values to draw")
	}
	if err := checkRange(lo, hi); err != nil {
		return nil, nil, err
	}
	if lo == hi { // all zero
		hi = 1
	}

	ya := yAxis(lo, hi)
	left := leftMargin(ya)
	right := Width - marginX - legendWidth(seriesNames) - legendGap
	gw := float64(right-left) / float64(ng)
	pitch := min(int(gw*groupFillRatio)/ns, maxBarPitch)
	if pitch < 1 {
		return nil, nil, fmt.Errorf("plot: %d groups of %d bars do not fit in %d pixels", ng, ns, right-left)
	}
	gap := 0
	if pitch >= 6 {
		gap = 1
	}
	barW := pitch - gap

	c := newCanvas()
	c.drawFrame(title, yLabel, ya, left, right)
	z := ya.pix(0)
	plot := image.Rect(left+1, plotTop, right+1, plotBottom)

	for gi, g := range groups {
		g0 := float64(left) + float64(gi)*gw
		mid := int(math.Round(g0 + gw/2))
		x := int(math.Round(g0+(gw-float64(ns*pitch-gap))/2)) + 1
		for s, v := range g.Values {
			x0 := x + s*pitch
			if !finite(v) {
				continue
			}
			col, cycle := seriesColor(s)
			p := ya.pix(v)
			if v >= 0 {
				c.fillBar(image.Rect(x0, p, x0+barW, z).Intersect(plot), col, cycle)
			} else {
				c.fillBar(image.Rect(x0, z+1, x0+barW, p+1).Intersect(plot), col, cycle)
			}
		}
		// Error bars after all bars, so that none is hidden by a neighbour.
		for s, v := range g.Values {
			if !finite(v) || g.Errors == nil || math.IsNaN(g.Errors[s]) || g.Errors[s] == 0 {
				continue
			}
			e := g.Errors[s]
			xc := x + s*pitch + barW/2
			capW := max(2, min(barW/4, 8))
			top, bot := ya.pix(v+e), ya.pix(v-e)
			c.vline(xc, max(top, plotTop), min(bot, plotBottom-1), colErrorBar)
			if top >= plotTop {
				c.hline(xc-capW, xc+capW, top, colErrorBar)
			}
			if bot <= plotBottom-1 {
				c.hline(xc-capW, xc+capW, bot, colErrorBar)
			}
		}
		// Category label, centred under the group.
		c.vline(mid, plotBottom+1, plotBottom+tickLen, colAxis)
		for li, line := range wrap(clean(g.Label), max(int(gw)-6, charW), categoryLines) {
			c.text(mid-textWidth(line)/2, plotBottom+tickLen+4+li*(textH+1), line, colText)
		}
	}
	if ya.lo < 0 {
		c.hline(left+1, right, z, colZero)
	}

	entries := make([]legendEntry, ns)
	for s, name := range seriesNames {
		col, cycle := seriesColor(s)
		entries[s] = legendEntry{name: seriesName(name, s), swatch: func(x, midY int) {
			c.fillBar(image.Rect(x+legendSwW/2-6, midY-6, x+legendSwW/2+6, midY+6), col, cycle)
		}}
	}
	c.drawLegend(right+legendGap, entries)
	return c.img, ya, nil
}

// fillBar fills r with col; bars of a repeated palette colour (cycle > 0)
// are hatched with lighter stripes of a cycle-dependent direction and spacing.
func (c *canvas) fillBar(r image.Rectangle, col color.RGBA, cycle int) {
	if cycle == 0 {
		c.fill(r, col)
		return
	}
	light := color.RGBA{
		uint8((int(col.R) + 255) / 2), uint8((int(col.G) + 255) / 2), uint8((int(col.B) + 255) / 2), 0xFF,
	}
	period := 4 + 2*((cycle-1)/2)
	r = r.Intersect(c.img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			k := x + y
			if cycle%2 == 0 {
				k = x - y + 1<<20
			}
			if k%period < 2 {
				c.img.SetRGBA(x, y, light)
			} else {
				c.img.SetRGBA(x, y, col)
			}
		}
	}
}
