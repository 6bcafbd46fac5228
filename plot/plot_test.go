package plot

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// outDir is where test charts go: $PLOT_EXAMPLES if set (to look at them),
// else a temporary folder.
func outDir(t *testing.T) string {
	if d := os.Getenv("PLOT_EXAMPLES"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// load decodes the PNG at path and checks its size.
func load(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != Width || b.Dy() != Height {
		t.Fatalf("%s is %dx%d, want %dx%d", path, b.Dx(), b.Dy(), Width, Height)
	}
	return img
}

func same(a color.Color, b color.RGBA) bool {
	r, g, bl, al := a.RGBA()
	r2, g2, b2, a2 := b.RGBA()
	return r == r2 && g == g2 && bl == b2 && al == a2
}

// count counts pixels of colour col inside r.
func count(img image.Image, r image.Rectangle, col color.RGBA) int {
	n := 0
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if same(img.At(x, y), col) {
				n++
			}
		}
	}
	return n
}

// near reports whether colour col is within d pixels of (x, y).
func near(img image.Image, x, y, d int, col color.RGBA) bool {
	return count(img, image.Rect(x-d, y-d, x+d+1, y+d+1), col) > 0
}

func plotRect(xa, ya *axis) image.Rectangle {
	return image.Rect(xa.p0, ya.p1, xa.p1+1, ya.p0+1)
}

// noStray checks that dir holds exactly the files in want (no temp files).
func noStray(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("folder holds %v, want %v", got, want)
	}
}

func TestLineChart(t *testing.T) {
	dir := outDir(t)
	path := filepath.Join(dir, "line.png")
	var xs, up, down, wave []float64
	for i := 0; i <= 100; i++ {
		x := float64(i * 50)
		xs = append(xs, x)
		up = append(up, 0.1+0.8*float64(i)/100)
		down = append(down, 0.9-0.8*float64(i)/100)
		wave = append(wave, 0.5+0.3*math.Sin(float64(i)/8))
	}
	series := []Series{
		{Name: "rising", X: xs, Y: up},
		{Name: "falling", X: xs, Y: down},
		{Name: "wave", X: xs, Y: wave},
		{Name: "one point", X: []float64{2500}, Y: []float64{0.3}},
	}
	title, xl, yl := "Training run", "step", "accuracy"
	if err := LineChart(path, title, xl, yl, series); err != nil {
		t.Fatal(err)
	}
	img := load(t, path)
	_, xa, ya, err := renderLineChart(title, xl, yl, series)
	if err != nil {
		t.Fatal(err)
	}
	pr := plotRect(xa, ya)
	if pr.Dx() < 500 || pr.Dy() < 300 {
		t.Fatalf("plot area %v too small", pr)
	}
	for i, s := range series {
		col := Palette[i]
		if n := count(img, pr, col); n < 10 {
			t.Errorf("series %q: %d pixels of its colour in the plot area", s.Name, n)
		}
		// Every point is drawn where the axes put it.
		for j := range s.Y {
			x, y := int(xa.pos(s.X[j])+0.5), int(ya.pos(s.Y[j])+0.5)
			if !pr.Inset(-1).Overlaps(image.Rect(x, y, x+1, y+1)) {
				t.Errorf("series %q point %d at (%d,%d) outside plot area %v", s.Name, j, x, y, pr)
			}
			covered := false // by a series drawn later
			for k := i + 1; k < len(series); k++ {
				covered = covered || near(img, x, y, 2, Palette[k])
			}
			if !covered && !near(img, x, y, 1, col) {
				t.Errorf("series %q point %d: colour not found near (%d,%d)", s.Name, j, x, y)
			}
		}
	}
	// Rising line: its colour in the top right, not the bottom right; falling: the opposite.
	w, h := pr.Dx(), pr.Dy()
	topRight := image.Rect(pr.Max.X-w/5, pr.Min.Y, pr.Max.X, pr.Min.Y+h/2)
	bottomRight := image.Rect(pr.Max.X-w/5, pr.Min.Y+h/2, pr.Max.X, pr.Max.Y)
	if a, b := count(img, topRight, Palette[0]), count(img, bottomRight, Palette[0]); a < 20 || b != 0 {
		t.Errorf("rising: %d px top right, %d bottom right", a, b)
	}
	if a, b := count(img, topRight, Palette[1]), count(img, bottomRight, Palette[1]); a != 0 || b < 20 {
		t.Errorf("falling: %d px top right, %d bottom right", a, b)
	}
	// The single point is a marker: a blob at least 5 px across.
	mx, my := int(xa.pos(2500)+0.5), int(ya.pos(0.3)+0.5)
	if n := count(img, image.Rect(mx-4, my-4, mx+5, my+5), Palette[3]); n < 20 {
		t.Errorf("single-point marker: %d px", n)
	}
	// Each series colour also appears in the legend, right of the plot area.
	legend := image.Rect(pr.Max.X+2, 0, Width, Height)
	for i := range series {
		if count(img, legend, Palette[i]) == 0 {
			t.Errorf("series %d missing from the legend", i)
		}
	}
	// No text inside the plot area, none outside the image margins' reach.
	if n := count(img, pr.Inset(1), colText); n != 0 {
		t.Errorf("%d text pixels inside the plot area", n)
	}
	noStray(t, dir, dirList(t, dir)...)
}

// dirList lists dir; with PLOT_EXAMPLES it may hold other charts.
func dirList(t *testing.T, dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
			continue
		}
		out = append(out, e.Name())
	}
	return out
}

func TestLineChartGaps(t *testing.T) {
	dir := outDir(t)
	path := filepath.Join(dir, "gaps.png")
	y := make([]float64, 100) // X nil: x = index
	for i := range y {
		y[i] = float64(i)
		if i >= 30 && i < 60 && i != 45 {
			y[i] = math.NaN()
		}
	}
	y[80] = math.Inf(1)
	series := []Series{{Name: "loss", Y: y}}
	if err := LineChart(path, "gaps", "step", "loss", series); err != nil {
		t.Fatal(err)
	}
	img := load(t, path)
	_, xa, ya, _ := renderLineChart("gaps", "step", "loss", series)
	pr := plotRect(xa, ya)
	col := Palette[0]
	colHas := func(x0, x1 int) bool { return count(img, image.Rect(x0, pr.Min.Y, x1, pr.Max.Y), col) > 0 }
	a, b, m := int(xa.pos(29)+0.5), int(xa.pos(60)+0.5), int(xa.pos(45)+0.5)
	if colHas(a+4, m-5) || colHas(m+6, b-3) {
		t.Error("line drawn across the NaN gap")
	}
	if n := count(img, image.Rect(m-4, pr.Min.Y, m+5, pr.Max.Y), col); n < 20 {
		t.Errorf("isolated point drawn with %d px, want a marker", n)
	}
	if !near(img, m, int(ya.pos(45)+0.5), 0, col) {
		t.Error("isolated point's marker not where expected")
	}
	c79, c81 := int(xa.pos(79)+0.5), int(xa.pos(81)+0.5)
	if colHas(c79+3, c81-2) {
		t.Error("line drawn across the Inf point")
	}
	// The y range ignores the Inf: the top tick is 100 (1-2-5 steps).
	if ya.hi != 100 || ya.lo != 0 {
		t.Errorf("y axis [%g, %g], want [0, 100]", ya.lo, ya.hi)
	}
}

func TestLineChartSinglePointOnly(t *testing.T) {
	dir := outDir(t)
	path := filepath.Join(dir, "single.png")
	s := []Series{{Name: "final", X: []float64{7}, Y: []float64{0.5}}}
	if err := LineChart(path, "one point", "x", "y", s); err != nil {
		t.Fatal(err)
	}
	img := load(t, path)
	_, xa, ya, _ := renderLineChart("one point", "x", "y", s)
	x, y := int(xa.pos(7)+0.5), int(ya.pos(0.5)+0.5)
	if !plotRect(xa, ya).Inset(5).Overlaps(image.Rect(x, y, x+1, y+1)) {
		t.Errorf("single point at (%d,%d) not well inside the plot area", x, y)
	}
	if n := count(img, image.Rect(x-4, y-4, x+5, y+5), Palette[0]); n < 20 {
		t.Errorf("marker has %d px", n)
	}
}

func TestLineChartManySeries(t *testing.T) {
	dir := outDir(t)
	var ss []Series
	for i := range 11 {
		y := make([]float64, 60)
		for j := range y {
			y[j] = float64(i) + math.Log1p(float64(j))
		}
		ss = append(ss, Series{Name: fmt.Sprintf("run %d with a rather long descriptive name", i), Y: y})
	}
	path := filepath.Join(dir, "many.png")
	if err := LineChart(path, "eleven runs", "epoch", "log loss", ss); err != nil {
		t.Fatal(err)
	}
	load(t, path)
}

func TestLineChartErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.png")
	cases := map[string][]Series{
		"no series":  nil,
		"empty":      {{Name: "a", Y: []float64{1, 2}}, {Name: "b"}},
		"mismatched": {{Name: "a", X: []float64{1, 2, 3}, Y: []float64{1, 2}}},
		"all NaN":    {{Name: "a", Y: []float64{math.NaN(), math.Inf(-1)}}},
		"huge range": {{Name: "a", Y: []float64{-math.MaxFloat64, math.MaxFloat64}}},
	}
	for name, s := range cases {
		if err := LineChart(path, "t", "x", "y", s); err == nil {
			t.Errorf("%s: no error", name)
		}
		noStray(t, dir)
	}
	if err := LineChart(filepath.Join(dir, "missing", "x.png"), "t", "x", "y", []Series{{Y: []float64{1}}}); err == nil {
		t.Error("writing into a missing folder: no error")
	}
	noStray(t, dir)
}

// bars finds the bars of colour col standing on (or hanging from) row base:
// for each horizontal run of col in row base-1 (up) or base+1 (down), the
// run's x range and the bar's height measured in its first column.
func bars(img image.Image, base int, up bool, col color.RGBA) (runs [][2]int, heights []int) {
	row, dy := base-1, -1
	if !up {
		row, dy = base+1, 1
	}
	for x := 0; x < Width; x++ {
		if !same(img.At(x, row), col) {
			continue
		}
		x0 := x
		for x < Width && same(img.At(x, row), col) {
			x++
		}
		h := 0
		for y := row; y >= 0 && y < Height && same(img.At(x0, y), col); y += dy {
			h++
		}
		runs = append(runs, [2]int{x0, x})
		heights = append(heights, h)
	}
	return runs, heights
}

func TestGroupedBarChart(t *testing.T) {
	dir := outDir(t)
	path := filepath.Join(dir, "bars.png")
	names := []string{"teacher", "student (KD)", "student (switch-KD)"}
	groups := []BarGroup{
		{Label: "counting", Values: []float64{0.8, 0.4, 0.6}, Errors: []float64{0.05, 0.1, 0.02}},
		{Label: "spatial relations", Values: []float64{0.2, 0.1, 0.15}},
		{Label: "colour", Values: []float64{0.6, 0.3, math.NaN()}, Errors: []float64{0.05, math.NaN(), 0}},
		{Label: "optical character recognition", Values: []float64{0.4, 0.2, 0.3}},
	}
	if err := GroupedBarChart(path, "Accuracy by question type", "accuracy", names, groups); err != nil {
		t.Fatal(err)
	}
	img := load(t, path)
	_, ya, _ := renderBarChart("Accuracy by question type", "accuracy", names, groups)
	if ya.lo != 0 {
		t.Errorf("value axis starts at %g, want 0", ya.lo)
	}
	// Bars stand on the x axis; heights are proportional to the values.
	perPx := float64(ya.p0-ya.p1) / (ya.hi - ya.lo)
	var widths []int
	for s := range names {
		runs, heights := bars(img, plotBottom, true, Palette[s])
		var want []float64
		for _, g := range groups {
			if finite(g.Values[s]) {
				want = append(want, g.Values[s])
			}
		}
		if len(heights) != len(want) {
			t.Fatalf("series %d: found %d bars %v, want %d", s, len(heights), runs, len(want))
		}
		for i, h := range heights {
			if exp := want[i] * perPx; math.Abs(float64(h)-exp) > 1 {
				t.Errorf("series %d bar %d: height %d px, want %.1f", s, i, h, exp)
			}
			widths = append(widths, runs[i][1]-runs[i][0])
		}
	}
	for _, w := range widths {
		if w != widths[0] || w < 10 {
			t.Errorf("bar widths %v, want equal and >= 10", widths)
			break
		}
	}
	// Error bar of group 0, series 0: dark pixels above the bar top up to v+e.
	runs, _ := bars(img, plotBottom, true, Palette[0])
	xc := (runs[0][0]+runs[0][1])/2 - 1
	top, barTop := ya.pix(0.85), ya.pix(0.8)
	if n := count(img, image.Rect(xc-1, top, xc+2, barTop), colErrorBar); n < barTop-top {
		t.Errorf("error bar: %d dark px between rows %d and %d", n, top, barTop)
	}
	if n := count(img, image.Rect(xc-6, top, xc+7, top+1), colErrorBar); n < 5 {
		t.Errorf("error bar cap: %d px", n)
	}
	// Labels stay out of the plot area, and each category label stays under its group.
	pr := image.Rect(ya.p0, ya.p1, Width, ya.p0) // rows of the plot area
	pr.Min.X, pr.Max.X = leftMargin(ya)+1, Width-marginX-legendWidth(names)-legendGap
	if n := count(img, pr, colText); n != 0 {
		t.Errorf("%d text pixels inside the plot area", n)
	}
	gw := float64(pr.Max.X-pr.Min.X+1) / float64(len(groups))
	// Category label pixels never sit within 2 px of a group boundary:
	// long labels are wrapped and abbreviated to their group's width.
	for g := 1; g < len(groups); g++ {
		xb := pr.Min.X - 1 + int(math.Round(float64(g)*gw))
		if n := count(img, image.Rect(xb-2, plotBottom+tickLen+2, xb+3, Height), colText); n != 0 {
			t.Errorf("category labels touch the boundary between groups %d and %d", g-1, g)
		}
	}
}

func TestGroupedBarChartNegative(t *testing.T) {
	dir := outDir(t)
	path := filepath.Join(dir, "negative.png")
	names := []string{"delta"}
	groups := []BarGroup{
		{Label: "a", Values: []float64{-2}},
		{Label: "b", Values: []float64{3}},
		{Label: "c", Values: []float64{-1}, Errors: []float64{0.5}},
	}
	if err := GroupedBarChart(path, "change vs baseline", "points", names, groups); err != nil {
		t.Fatal(err)
	}
	img := load(t, path)
	_, ya, _ := renderBarChart("change vs baseline", "points", names, groups)
	if ya.lo >= -1.5 || ya.hi < 3 {
		t.Fatalf("value axis [%g, %g] does not cover [-1.5, 3]", ya.lo, ya.hi)
	}
	z := ya.pix(0)
	_, upH := bars(img, z, true, Palette[0])
	_, downH := bars(img, z, false, Palette[0])
	if len(upH) != 1 || len(downH) != 2 {
		t.Fatalf("found %d bars up, %d down", len(upH), len(downH))
	}
	perPx := float64(ya.p0-ya.p1) / (ya.hi - ya.lo)
	for i, c := range []struct {
		h    int
		v    float64
		down bool
	}{{upH[0], 3, false}, {downH[0], 2, true}, {downH[1], 1, true}} {
		exp := c.v * perPx
		if c.down {
			// A bar reaching the bottom of the axis stops above the axis line.
			exp = min(exp, float64(plotBottom-1-z))
		}
		if math.Abs(float64(c.h)-exp) > 1 {
			t.Errorf("bar %d: %d px for |%g|, want %.1f", i, c.h, c.v, exp)
		}
	}
	if n := count(img, image.Rect(0, z, Width, z+1), colZero); n < 100 {
		t.Errorf("zero line: %d px", n)
	}
}

func TestGroupedBarChartManySeries(t *testing.T) {
	dir := outDir(t)
	var names []string
	var groups []BarGroup
	for s := range 10 {
		names = append(names, fmt.Sprintf("model-%d", s))
	}
	for g := range 12 {
		v := make([]float64, len(names))
		for s := range v {
			v[s] = float64((g*7+s*3)%10+1) / 10
		}
		groups = append(groups, BarGroup{Label: fmt.Sprintf("question_type_%d", g), Values: v})
	}
	path := filepath.Join(dir, "bars_many.png")
	if err := GroupedBarChart(path, "many", "score", names, groups); err != nil {
		t.Fatal(err)
	}
	img := load(t, path)
	for s := range 8 {
		if count(img, image.Rect(0, plotTop, Width, plotBottom), Palette[s]) == 0 {
			t.Errorf("colour of series %d missing", s)
		}
	}
}

func TestGroupedBarChartErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.png")
	two := []string{"a", "b"}
	cases := []struct {
		name   string
		series []string
		groups []BarGroup
	}{
		{"no series", nil, []BarGroup{{Label: "g", Values: nil}}},
		{"no groups", two, nil},
		{"short values", two, []BarGroup{{Label: "g", Values: []float64{1}}}},
		{"short errors", two, []BarGroup{{Label: "g", Values: []float64{1, 2}, Errors: []float64{1}}}},
		{"negative error", two, []BarGroup{{Label: "g", Values: []float64{1, 2}, Errors: []float64{1, -1}}}},
		{"no finite value", two, []BarGroup{{Label: "g", Values: []float64{math.NaN(), math.Inf(1)}}}},
		{"too many bars", two, make([]BarGroup, 1000)},
	}
	for i := range cases[6].groups {
		cases[6].groups[i] = BarGroup{Label: "g", Values: []float64{1, 2}}
	}
	for _, c := range cases {
		if err := GroupedBarChart(path, "t", "y", c.series, c.groups); err == nil {
			t.Errorf("%s: no error", c.name)
		}
		noStray(t, dir)
	}
}

func TestWriteReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "chart.png")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A failing call leaves the old file alone.
	if err := LineChart(path, "t", "x", "y", nil); err == nil {
		t.Fatal("no error")
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Fatal("failed call touched the existing file")
	}
	if err := GroupedBarChart(path, "t", "y", []string{"a"}, []BarGroup{{Label: "g", Values: []float64{1}}}); err != nil {
		t.Fatal(err)
	}
	load(t, path)
	noStray(t, dir, "chart.png")
	// A path that is a folder: the rename fails and nothing is left behind.
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	os.WriteFile(filepath.Join(sub, "f"), nil, 0o644)
	if err := LineChart(sub, "t", "x", "y", []Series{{Y: []float64{1, 2}}}); err == nil {
		t.Error("writing over a folder: no error")
	}
	noStray(t, dir, "chart.png", "sub")
}

func TestNiceTicks(t *testing.T) {
	cases := []struct {
		lo, hi  float64
		target  int
		wantLo  float64
		wantHi  float64
		wantLab string
	}{
		{0, 97, 5, 0, 100, "0 20 40 60 80 100"},
		{0.13, 0.87, 8, 0.1, 0.9, "0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9"},
		{-3.2, 4.1, 4, -4, 6, "-4 -2 0 2 4 6"},
		{0, 2.5e6, 5, 0, 2.5e6, "0 5e5 1e6 1.5e6 2e6 2.5e6"},
		{0, 3e-7, 3, 0, 3e-7, "0 1e-7 2e-7 3e-7"},
		{1.0002, 1.0009, 7, 1.0002, 1.0009, "1.0002 1.0003 1.0004 1.0005 1.0006 1.0007 1.0008 1.0009"},
		{-0.05, 0.05, 2, -0.05, 0.05, "-0.05 0 0.05"},
	}
	for _, c := range cases {
		lo, hi, step, ticks := niceTicks(c.lo, c.hi, c.target)
		lab := strings.Join(tickLabels(ticks, step), " ")
		if math.Abs(lo-c.wantLo) > 1e-9 || math.Abs(hi-c.wantHi) > 1e-9 || lab != c.wantLab {
			t.Errorf("niceTicks(%g, %g, %d) = [%g, %g] %q, want [%g, %g] %q",
				c.lo, c.hi, c.target, lo, hi, lab, c.wantLo, c.wantHi, c.wantLab)
		}
		m := step / math.Pow(10, math.Floor(math.Log10(step)))
		if math.Abs(m-1) > 1e-9 && math.Abs(m-2) > 1e-9 && math.Abs(m-5) > 1e-9 {
			t.Errorf("step %g is not 1, 2 or 5 times a power of ten", step)
		}
	}
}

func TestWrapAndTruncate(t *testing.T) {
	if got := truncate("abcdefghij", 7*7); got != "abcd..." {
		t.Errorf("truncate = %q", got)
	}
	if got := truncate("abc", 7*3); got != "abc" {
		t.Errorf("truncate = %q", got)
	}
	cases := []struct {
		s     string
		chars int
		want  string
	}{
		{"spatial relations", 10, "spatial|relations"},
		{"optical character recognition", 10, "optical|charact..."},
		{"question_type_counting", 14, "question_type_|counting"},
		{"short", 10, "short"},
		{"averyveryverylongword", 8, "avery..."},
	}
	for _, c := range cases {
		lines := wrap(c.s, c.chars*charW, 2)
		if got := strings.Join(lines, "|"); got != c.want {
			t.Errorf("wrap(%q, %d) = %q, want %q", c.s, c.chars, got, c.want)
		}
		for _, l := range lines {
			if textWidth(l) > c.chars*charW {
				t.Errorf("wrap(%q): line %q too wide", c.s, l)
			}
		}
	}
}
