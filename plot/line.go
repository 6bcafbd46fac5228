package plot

import (
	"errors"
	"fmt"
	"image"
	"math"
)

// Series is one line of a LineChart: the points (X[i], Y[i]). X may be nil,
// in which case the points are at x = 0, 1, 2, …; otherwise it must have the
// same length as Y. Points with a NaN or ±Inf coordinate are skipped and
// leave a gap in the line.
type Series struct {
	Name string
	X, Y []float64
}

const (
	lineHalfWidth = 1.1 // line width 2.2 px
	markerRadius  = 3.5
	markerSpacing = 14 // draw markers on every point when points are at least this far apart on average
)

// LineChart draws series as lines on linear axes and writes the chart as a
// Width×Height PNG to path. The axes have 1-2-5 ticks with gridlines, each
// series gets its own palette colour and a legend entry, and runs of a single
// point (a one-point series, or a point between two gaps) are drawn as
// markers; sparse series get markers on every point. It is an error to pass
// no series, a series with no points, X and Y of different lengths, or no
// finite point at all; then no file is written.
func LineChart(path, title, xLabel, yLabel string, series []Series) error {
	img, _, _, err := renderLineChart(title, xLabel, yLabel, series)
	if err != nil {
		return err
	}
	return writePNG(path, img)
}

func (s *Series) x(i int) float64 {
	if s.X == nil {
		return float64(i)
	}
	return s.X[i]
}

// renderLineChart draws the chart and returns its axes (for tests).
func renderLineChart(title, xLabel, yLabel string, series []Series) (*image.RGBA, *axis, *axis, error) {
	if len(series) == 0 {
		return nil, nil, nil, errors.New("plot: LineChart needs at least one series")
	}
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := math.Inf(1), math.Inf(-1)
	npts := make([]int, len(series))
	for i := range series {
		s := &series[i]
		name := seriesName(s.Name, i)
		if len(s.Y) == 0 {
			return nil, nil, nil, fmt.Errorf("plot: series %q has no points", name)
		}
		if s.X != nil && len(s.X) != len(s.Y) {
			return nil, nil, nil, fmt.Errorf("plot: series %q has %d X values but %d Y values", name, len(s.X), len(s.Y))
		}
		for j, y := range s.Y {
			x := s.x(j)
			if !finite(x) || !finite(y) {
				continue
			}
			npts[i]++
			xmin, xmax = min(xmin, x), max(xmax, x)
			ymin, ymax = min(ymin, y), max(ymax, y)
		}
	}
	if math.IsInf(xmin, 1) {
		return nil, nil, nil, errors.New("plot: LineChart has no finite points to draw")
	}
	if err := checkRange(xmin, xmax); err != nil {
		return nil, nil, nil, err
	}
	if err := checkRange(ymin, ymax); err != nil {
		return nil, nil, nil, err
	}

	names := make([]string, len(series))
	for i := range series {
		names[i] = seriesName(series[i].Name, i)
	}
	ya := yAxis(ymin, ymax)
	left := leftMargin(ya)
	right := Width - marginX - legendWidth(names) - legendGap
	xlo, xhi := padRange(xmin, xmax)
	nlo, nhi, ticks, labels := fitTicks(xlo, xhi, right-left, 14, 10, textWidth)
	xa := &axis{lo: nlo, hi: nhi, p0: left, p1: right, ticks: ticks, labels: labels}

	c := newCanvas()
	// x gridlines first so that the frame's axes are drawn over them.
	for _, t := range xa.ticks {
		c.vline(xa.pix(t), plotTop, plotBottom-1, colGrid)
	}
	c.drawFrame(title, yLabel, ya, left, right)
	for i, t := range xa.ticks {
		px := xa.pix(t)
		c.vline(px, plotBottom+1, plotBottom+tickLen, colAxis)
		l := xa.labels[i]
		lx := min(max(px-textWidth(l)/2, marginX), Width-marginX-textWidth(l))
		c.text(lx, plotBottom+tickLen+4, l, colText)
	}
	xLabel = truncate(clean(xLabel), Width-2*marginX)
	c.text(max((left+right-textWidth(xLabel))/2, marginX), plotBottom+tickLen+4+textH+6, xLabel, colText)

	clip := image.Rect(left-2, plotTop-3, right+3, plotBottom+2)
	entries := make([]legendEntry, len(series))
	for i := range series {
		s := &series[i]
		col, cycle := seriesColor(i)
		d := dashes[cycle%len(dashes)]
		sparse := npts[i] > 0 && npts[i]*markerSpacing <= right-left
		c.drawSeries(s, xa, ya, d, sparse, clip)
		c.paintMask(clip, col)

		legendClip := image.Rect(right+legendGap-2, plotTop, Width, plotBottom)
		entries[i] = legendEntry{name: names[i], swatch: func(x, midY int) {
			y := float64(midY) + 0.5
			if npts[i] > 1 {
				c.segment(float64(x), y, float64(x+legendSwW), y, lineHalfWidth, d, 0, legendClip)
			}
			if sparse || npts[i] == 1 {
				c.disc(float64(x)+legendSwW/2, y, markerRadius, legendClip)
			}
			c.paintMask(legendClip, col)
		}}
	}
	c.drawLegend(right+legendGap, entries)
	return c.img, xa, ya, nil
}

// drawSeries adds the series' lines and markers to the mask.
func (c *canvas) drawSeries(s *Series, xa, ya *axis, d dash, markers bool, clip image.Rectangle) {
	var prevX, prevY float64
	havePrev, pos := false, 0.0
	run := 0 // length of the current run of finite points
	for j, yv := range s.Y {
		xv := s.x(j)
		if !finite(xv) || !finite(yv) {
			if run == 1 {
				c.disc(prevX, prevY, markerRadius, clip)
			}
			havePrev, run = false, 0
			continue
		}
		px, py := xa.pos(xv)+0.5, ya.pos(yv)+0.5
		if havePrev {
			c.segment(prevX, prevY, px, py, lineHalfWidth, d, pos, clip)
			pos += math.Hypot(px-prevX, py-prevY)
		}
		if markers {
			c.disc(px, py, markerRadius, clip)
		}
		prevX, prevY, havePrev = px, py, true
		run++
	}
	if run == 1 {
		c.disc(prevX, prevY, markerRadius, clip)
	}
}
