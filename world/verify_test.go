package world

// Independent checks of the generated world against scenes.json: the
// scenes are re-parsed into test-local types and every answer, caption,
// placement and pixel is re-derived here without the generator's code.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

type tObj struct {
	Shape, Colour, Size string
	Row, Col            int
	BBox                [4]int
	RGB                 [3]int
}

type tText struct {
	Char, Kind string
	Host       int
	Row, Col   int
	BBox       [4]int
	Scale      int
	RGB        [3]int
}

type tScene struct {
	ID, Image, Split         string
	Size, Grid, Cell, Origin int
	Background               [3]int
	Objects                  []tObj
	Text                     *tText
}

func (o tObj) name() string { return o.Colour + " " + o.Shape }

func loadScenes(t *testing.T, dir string) map[string]*tScene {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "scenes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var list []*tScene
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]*tScene{}
	for _, s := range list {
		out[s.Image] = s
	}
	return out
}

func (s *tScene) objs(pred func(tObj) bool) []tObj {
	var out []tObj
	for _, o := range s.Objects {
		if pred(o) {
			out = append(out, o)
		}
	}
	return out
}

// one returns the single object matching pred, or an error if the
// reference is ambiguous or empty.
func (s *tScene) one(what string, pred func(tObj) bool) (tObj, error) {
	found := s.objs(pred)
	if len(found) != 1 {
		return tObj{}, fmt.Errorf("%q names %d objects", what, len(found))
	}
	return found[0], nil
}

// itemsWhere lists the cells' occupants (objects, and a standalone character
// as "char") matching a cell predicate.
func (s *tScene) itemsWhere(in func(r, c int) bool) (objs []tObj, chars int) {
	for _, o := range s.Objects {
		if in(o.Row, o.Col) {
			objs = append(objs, o)
		}
	}
	if s.Text != nil && s.Text.Host < 0 && in(s.Text.Row, s.Text.Col) {
		chars++
	}
	return
}

var plurals = map[string]string{"circles": "circle", "squares": "square", "triangles": "triangle", "crosses": "cross", "rings": "ring"}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

var (
	qExist     = regexp.MustCompile(`^Is there a (\w+) (\w+) in the image\?$`)
	qColourOf  = regexp.MustCompile(`^What colour is the (\w+)\?$`)
	qShapeOf   = regexp.MustCompile(`^What shape is the (\w+) object\?$`)
	qSize1     = regexp.MustCompile(`^Is the (\w+) large or small\?$`)
	qSize2     = regexp.MustCompile(`^Is the (\w+) (\w+) large or small\?$`)
	qCountCol  = regexp.MustCompile(`^How many (\w+) objects are there\?$`)
	qCount     = regexp.MustCompile(`^How many (\w+) are there\?$`)
	qLeftRight = regexp.MustCompile(`^Is the (\w+) (\w+) to the (left|right) of the (\w+) (\w+)\?$`)
	qAboveBel  = regexp.MustCompile(`^Is the (\w+) (\w+) (above|below) the (\w+) (\w+)\?$`)
	qWhatDir   = regexp.MustCompile(`^What is (to the right of|to the left of|above|below) the (\w+) (\w+)\?$`)
	qLeftmost  = regexp.MustCompile(`^Which object is furthest to the left\?$`)
	qWhichChar = regexp.MustCompile(`^Which character is written in the image\?$`)
	qWritten   = regexp.MustCompile(`^What (letter|number) is written in the image\?$`)
	qOn        = regexp.MustCompile(`^What is the (letter|number) on the (\w+) (\w+)\?$`)
	mcOption   = regexp.MustCompile(`^([A-D])\. (.+)$`)
)

// derive answers a question stem from the scene alone.
func derive(s *tScene, q string) (string, error) {
	has := func(c, sh string) func(tObj) bool {
		return func(o tObj) bool { return o.Colour == c && o.Shape == sh }
	}
	if m := qExist.FindStringSubmatch(q); m != nil {
		return yesNo(len(s.objs(has(m[1], m[2]))) > 0), nil
	}
	if m := qColourOf.FindStringSubmatch(q); m != nil {
		o, err := s.one(m[1], func(o tObj) bool { return o.Shape == m[1] })
		return o.Colour, err
	}
	if m := qShapeOf.FindStringSubmatch(q); m != nil {
		o, err := s.one(m[1], func(o tObj) bool { return o.Colour == m[1] })
		return o.Shape, err
	}
	if m := qSize2.FindStringSubmatch(q); m != nil {
		o, err := s.one(m[1]+" "+m[2], has(m[1], m[2]))
		return o.Size, err
	}
	if m := qSize1.FindStringSubmatch(q); m != nil {
		o, err := s.one(m[1], func(o tObj) bool { return o.Shape == m[1] })
		return o.Size, err
	}
	if m := qCountCol.FindStringSubmatch(q); m != nil {
		return fmt.Sprint(len(s.objs(func(o tObj) bool { return o.Colour == m[1] }))), nil
	}
	if m := qCount.FindStringSubmatch(q); m != nil {
		if m[1] == "shapes" {
			return fmt.Sprint(len(s.Objects)), nil
		}
		sh, ok := plurals[m[1]]
		if !ok {
			return "", fmt.Errorf("unknown plural %q", m[1])
		}
		return fmt.Sprint(len(s.objs(func(o tObj) bool { return o.Shape == sh }))), nil
	}
	if m := qLeftRight.FindStringSubmatch(q); m != nil {
		a, err1 := s.one(m[1]+" "+m[2], has(m[1], m[2]))
		b, err2 := s.one(m[4]+" "+m[5], has(m[4], m[5]))
		if err1 != nil || err2 != nil || a.Col == b.Col {
			return "", fmt.Errorf("ill-posed: %v %v same column=%v", err1, err2, a.Col == b.Col)
		}
		if m[3] == "left" {
			return yesNo(a.Col < b.Col), nil
		}
		return yesNo(a.Col > b.Col), nil
	}
	if m := qAboveBel.FindStringSubmatch(q); m != nil {
		a, err1 := s.one(m[1]+" "+m[2], has(m[1], m[2]))
		b, err2 := s.one(m[4]+" "+m[5], has(m[4], m[5]))
		if err1 != nil || err2 != nil || a.Row == b.Row {
			return "", fmt.Errorf("ill-posed: %v %v same row=%v", err1, err2, a.Row == b.Row)
		}
		if m[3] == "above" {
			return yesNo(a.Row < b.Row), nil
		}
		return yesNo(a.Row > b.Row), nil
	}
	if m := qWhatDir.FindStringSubmatch(q); m != nil {
		a, err := s.one(m[2]+" "+m[3], has(m[2], m[3]))
		if err != nil {
			return "", err
		}
		in := map[string]func(r, c int) bool{
			"to the right of": func(r, c int) bool { return c > a.Col },
			"to the left of":  func(r, c int) bool { return c < a.Col },
			"above":           func(r, c int) bool { return r < a.Row },
			"below":           func(r, c int) bool { return r > a.Row },
		}[m[1]]
		objs, chars := s.itemsWhere(in)
		if len(objs) != 1 || chars != 0 {
			return "", fmt.Errorf("%d objects and %d characters %s the %s", len(objs), chars, m[1], a.name())
		}
		return objs[0].name(), nil
	}
	if qLeftmost.MatchString(q) {
		minCol := s.Grid
		for _, o := range s.Objects {
			minCol = min(minCol, o.Col)
		}
		if s.Text != nil && s.Text.Host < 0 {
			minCol = min(minCol, s.Text.Col)
		}
		objs, chars := s.itemsWhere(func(r, c int) bool { return c == minCol })
		if len(objs) != 1 || chars != 0 {
			return "", fmt.Errorf("leftmost column holds %d objects and %d characters", len(objs), chars)
		}
		return objs[0].name(), nil
	}
	if qWhichChar.MatchString(q) || qWritten.MatchString(q) {
		if s.Text == nil {
			return "", fmt.Errorf("no character in the image")
		}
		if m := qWritten.FindStringSubmatch(q); m != nil && (m[1] == "letter") != (s.Text.Kind == "letter") {
			return "", fmt.Errorf("asks for a %s, the image has a %s", m[1], s.Text.Kind)
		}
		return s.Text.Char, nil
	}
	if m := qOn.FindStringSubmatch(q); m != nil {
		o, err := s.one(m[2]+" "+m[3], has(m[2], m[3]))
		if err != nil || s.Text == nil || s.Text.Host < 0 || s.Objects[s.Text.Host].name() != o.name() {
			return "", fmt.Errorf("no character on the %s (%v)", o.name(), err)
		}
		if (m[1] == "letter") != (s.Text.Kind == "letter") {
			return "", fmt.Errorf("kind mismatch")
		}
		return s.Text.Char, nil
	}
	return "", fmt.Errorf("unrecognised question %q", q)
}

func caption(s *tScene) string {
	objs := slices.Clone(s.Objects)
	hostName := ""
	if s.Text != nil && s.Text.Host >= 0 {
		hostName = s.Objects[s.Text.Host].name()
	}
	slices.SortFunc(objs, func(a, b tObj) int { return (a.Row*s.Grid + a.Col) - (b.Row*s.Grid + b.Col) })
	var parts []string
	for _, o := range objs {
		p := fmt.Sprintf("a %s %s %s", o.Size, o.Colour, o.Shape)
		if o.name() == hostName {
			p += fmt.Sprintf(" with the %s %s", s.Text.Kind, s.Text.Char)
		}
		parts = append(parts, p)
	}
	if s.Text != nil && s.Text.Host < 0 {
		parts = append(parts, fmt.Sprintf("the %s %s", s.Text.Kind, s.Text.Char))
	}
	if len(parts) == 1 {
		return parts[0] + "."
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1] + "."
}

func verifyWorld(t *testing.T, dir string, m *Manifest) {
	scenes := loadScenes(t, dir)
	popular := m.Vocab.Popular
	for _, split := range Splits {
		ss, err := ReadSamples(filepath.Join(dir, split+".json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, smp := range ss {
			sc := scenes[smp.Image]
			if sc == nil || sc.Split != split {
				t.Fatalf("%s: no %s scene for %s", smp.ID, split, smp.Image)
			}
			q := smp.Question()
			want, answer := "", smp.Answer()
			if smp.Type == TypeMC {
				lines := strings.Split(q, "\n")
				if len(lines) != 6 || lines[5] != "Answer with the option's letter from the given choices directly." {
					t.Fatalf("%s: bad mc layout %q", smp.ID, q)
				}
				stemAns, err := derive(sc, lines[0])
				if err != nil {
					t.Fatalf("%s: %q: %v", smp.ID, lines[0], err)
				}
				var opts []string
				for i, l := range lines[1:5] {
					om := mcOption.FindStringSubmatch(l)
					if om == nil || om[1] != string(rune('A'+i)) {
						t.Fatalf("%s: bad option line %q", smp.ID, l)
					}
					opts = append(opts, om[2])
					if om[2] == stemAns {
						want = om[1]
					}
				}
				if !slices.Equal(opts, smp.Options) {
					t.Fatalf("%s: options %v vs metadata %v", smp.ID, opts, smp.Options)
				}
				slices.Sort(opts)
				if len(slices.Compact(opts)) != 4 {
					t.Fatalf("%s: repeated options %v", smp.ID, smp.Options)
				}
			} else {
				want, err = derive(sc, q)
				if err != nil {
					t.Fatalf("%s: %q: %v", smp.ID, q, err)
				}
			}
			if want != answer {
				t.Fatalf("%s: %q answered %q, scene says %q", smp.ID, q, answer, want)
			}
			if smp.Type == TypeExist && answer == "No" {
				em := qExist.FindStringSubmatch(q)
				obj := em[1] + " " + em[2]
				switch smp.PopeSplit {
				case PopePopular:
					if !slices.Contains(popular, obj) {
						t.Fatalf("%s: popular negative %q not in %v", smp.ID, obj, popular)
					}
				case PopeAdversarial:
					near := sc.objs(func(o tObj) bool { return (o.Colour == em[1]) != (o.Shape == em[2]) })
					if len(near) == 0 {
						t.Fatalf("%s: adversarial negative %q is not one attribute from a present object", smp.ID, obj)
					}
				case PopeRandom:
				default:
					t.Fatalf("%s: pope split %q", smp.ID, smp.PopeSplit)
				}
			}
		}
	}
	for _, c := range m.Captions() {
		if got := caption(scenes[c.Image]); got != c.Answer() || c.Question() != "Describe the image." {
			t.Fatalf("%s: caption %q, scene says %q", c.ID, c.Answer(), got)
		}
	}
}

func TestAnswersRederivedQuick(t *testing.T) {
	dir := t.TempDir()
	m, err := Generate(QuickConfig(), dir)
	if err != nil {
		t.Fatal(err)
	}
	verifyWorld(t, dir, m)
}

func TestAnswersRederivedDefault(t *testing.T) {
	dir, m := defaultWorld(t)
	verifyWorld(t, dir, m)
}

func TestScenesWellFormed(t *testing.T) {
	dir, _ := defaultWorld(t)
	scenes := loadScenes(t, dir)
	keys := map[string]string{}
	for _, s := range scenes {
		if len(s.Objects) < 1 || len(s.Objects) > 4 {
			t.Fatalf("%s: %d objects", s.ID, len(s.Objects))
		}
		type box struct {
			b    [4]int
			what string
		}
		var boxes []box
		cells := map[[2]int]bool{}
		combos := map[string]bool{}
		inCell := func(b [4]int, r, c int) bool {
			x0, y0 := s.Origin+c*s.Cell, s.Origin+r*s.Cell
			return b[0] >= x0 && b[1] >= y0 && b[2] <= x0+s.Cell && b[3] <= y0+s.Cell && b[0] < b[2] && b[1] < b[3]
		}
		for _, o := range s.Objects {
			if !inCell(o.BBox, o.Row, o.Col) || cells[[2]int{o.Row, o.Col}] || combos[o.name()] {
				t.Fatalf("%s: %s misplaced, sharing a cell or repeated", s.ID, o.name())
			}
			cells[[2]int{o.Row, o.Col}], combos[o.name()] = true, true
			boxes = append(boxes, box{o.BBox, o.name()})
		}
		if tx := s.Text; tx != nil {
			w, h := tx.BBox[2]-tx.BBox[0], tx.BBox[3]-tx.BBox[1]
			if w != 5*tx.Scale || h != 7*tx.Scale || tx.Scale < 2 {
				t.Fatalf("%s: text box %v at scale %d", s.ID, tx.BBox, tx.Scale)
			}
			if tx.Host >= 0 {
				o := s.Objects[tx.Host]
				if o.Size != "large" || (o.Shape != "circle" && o.Shape != "square") {
					t.Fatalf("%s: character on a %s %s", s.ID, o.Size, o.Shape)
				}
				// The glyph box lies within the host shape (for a circle: its corners inside the circle).
				b := o.BBox
				cx2, cy2, r2 := b[0]+b[2], b[1]+b[3], b[2]-b[0]
				for _, px := range []int{tx.BBox[0], tx.BBox[2]} {
					for _, py := range []int{tx.BBox[1], tx.BBox[3]} {
						dx, dy := 2*px-cx2, 2*py-cy2
						if px < b[0] || px > b[2] || py < b[1] || py > b[3] || (o.Shape == "circle" && dx*dx+dy*dy > r2*r2) {
							t.Fatalf("%s: glyph corner (%d,%d) outside its %s %v", s.ID, px, py, o.Shape, b)
						}
					}
				}
			} else {
				if !inCell(tx.BBox, tx.Row, tx.Col) || cells[[2]int{tx.Row, tx.Col}] {
					t.Fatalf("%s: standalone character misplaced", s.ID)
				}
				boxes = append(boxes, box{tx.BBox, "char"})
			}
		}
		// No two items overlap, not even touching.
		for i := range boxes {
			for j := i + 1; j < len(boxes); j++ {
				a, b := boxes[i].b, boxes[j].b
				if a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3] {
					t.Fatalf("%s: %s %v overlaps %s %v", s.ID, boxes[i].what, a, boxes[j].what, b)
				}
			}
		}
		// Splits hold disjoint scenes: no content repeats anywhere.
		var parts []string
		for _, o := range s.Objects {
			parts = append(parts, fmt.Sprintf("%d%d%s%s", o.Row, o.Col, o.Size, o.name()))
		}
		slices.Sort(parts)
		k := strings.Join(parts, ",")
		if s.Text != nil {
			k += fmt.Sprintf("|%s%d%d%d", s.Text.Char, s.Text.Host, s.Text.Row, s.Text.Col)
		}
		if prev, dup := keys[k]; dup {
			t.Fatalf("scenes %s and %s have the same content", prev, s.ID)
		}
		keys[k] = s.ID
	}
}

// TestImagesMatchScenes checks the pixels: outside the items the image is
// background within the texture amplitude; inside each object the share of
// object-coloured area matches its shape's area fraction, so circles,
// squares, triangles, crosses and rings are told apart by pixels.
func TestImagesMatchScenes(t *testing.T) {
	dir, _ := defaultWorld(t)
	scenes := loadScenes(t, dir)
	area := map[string]float64{"square": 1, "circle": 0.7854, "ring": 0.5890, "triangle": 0.5, "cross": 5.0 / 9}
	n := 0
	for _, s := range scenes {
		if n++; n > 300 {
			break
		}
		img := decodePNG(t, filepath.Join(dir, s.Image))
		if img.Bounds().Dx() != s.Size || img.Bounds().Dy() != s.Size {
			t.Fatalf("%s: image %v", s.ID, img.Bounds())
		}
		covered := func(x, y int) bool {
			for _, o := range s.Objects {
				if x >= o.BBox[0] && x < o.BBox[2] && y >= o.BBox[1] && y < o.BBox[3] {
					return true
				}
			}
			b := [4]int{}
			if s.Text != nil {
				b = s.Text.BBox
			}
			return x >= b[0] && x < b[2] && y >= b[1] && y < b[3]
		}
		for y := 0; y < s.Size; y++ {
			for x := 0; x < s.Size; x++ {
				if covered(x, y) {
					continue
				}
				p := img.RGBAAt(x, y)
				d := int(p.R) - s.Background[0]
				if d < -5 || d > 5 || int(p.G)-s.Background[1] != d || int(p.B)-s.Background[2] != d {
					t.Fatalf("%s: background pixel (%d,%d) = %v, background %v", s.ID, x, y, p, s.Background)
				}
			}
		}
		for i, o := range s.Objects {
			if s.Text != nil && s.Text.Host == i {
				continue // the glyph covers part of the shape
			}
			// Per pixel, the blend weight between background and object colour.
			var sum float64
			var den float64
			for c := 0; c < 3; c++ {
				d := float64(o.RGB[c] - s.Background[c])
				den += d * d
			}
			for y := o.BBox[1]; y < o.BBox[3]; y++ {
				for x := o.BBox[0]; x < o.BBox[2]; x++ {
					p := img.RGBAAt(x, y)
					px := [3]float64{float64(p.R), float64(p.G), float64(p.B)}
					var num float64
					for c := 0; c < 3; c++ {
						num += (px[c] - float64(s.Background[c])) * float64(o.RGB[c]-s.Background[c])
					}
					sum += num / den
				}
			}
			w := o.BBox[2] - o.BBox[0]
			got := sum / float64(w*w)
			if d := got - area[o.Shape]; d < -0.07 || d > 0.07 {
				t.Fatalf("%s: %s %s covers %.3f of its box, want %.3f", s.ID, o.Size, o.name(), got, area[o.Shape])
			}
			if (o.Size == "large") != (w > s.Cell*2/3) {
				t.Fatalf("%s: %s box %d px in a %d px cell", s.ID, o.Size, w, s.Cell)
			}
		}
	}
}

// glyphDistance counts differing font pixels between two characters.
func glyphDistance(a, b string) int {
	ga, gb := Glyph(a, 1), Glyph(b, 1)
	d := 0
	for y := range ga {
		for x := range ga[y] {
			if ga[y][x] != gb[y][x] {
				d++
			}
		}
	}
	return d
}

func TestGlyphsDistinct(t *testing.T) {
	chars := Chars()
	if len(chars) != 20 {
		t.Fatalf("%d characters", len(chars))
	}
	for i, a := range chars {
		g := Glyph(a, 3)
		if len(g) != 21 || len(g[0]) != 15 {
			t.Fatalf("%s: glyph %dx%d at scale 3", a, len(g[0]), len(g))
		}
		for j := i + 1; j < len(chars); j++ {
			// At least 3 font pixels apart: 12 image pixels at scale 2, 27 at 3.
			if d := glyphDistance(a, chars[j]); d < 3 {
				t.Errorf("%s and %s differ by %d font pixels", a, chars[j], d)
			}
		}
	}
	if Glyph("O", 1) != nil || Glyph("A", 0) != nil {
		t.Fatal("glyph outside the world")
	}
}

// TestGlyphsLegibleInImages reads every character back from the PNG pixels:
// ink pixels are the ones nearer the text colour than the surface under it;
// sampling each font pixel's centre must give back exactly the glyph, and
// nearest-template matching over all characters must name the right one.
func TestGlyphsLegibleInImages(t *testing.T) {
	dir, _ := defaultWorld(t)
	scenes := loadScenes(t, dir)
	read := 0
	for _, s := range scenes {
		tx := s.Text
		if tx == nil {
			continue
		}
		img := decodePNG(t, filepath.Join(dir, s.Image))
		under := s.Background
		if tx.Host >= 0 {
			under = s.Objects[tx.Host].RGB
		}
		var bits [7][5]bool
		for fy := 0; fy < 7; fy++ {
			for fx := 0; fx < 5; fx++ {
				// All scale x scale image pixels of a font pixel agree.
				first := true
				for dy := 0; dy < tx.Scale; dy++ {
					for dx := 0; dx < tx.Scale; dx++ {
						p := img.RGBAAt(tx.BBox[0]+fx*tx.Scale+dx, tx.BBox[1]+fy*tx.Scale+dy)
						px := [3]int{int(p.R), int(p.G), int(p.B)}
						ink := dist2(px, tx.RGB) < dist2(px, under)
						if first {
							bits[fy][fx], first = ink, false
						} else if ink != bits[fy][fx] {
							t.Fatalf("%s: font pixel (%d,%d) is not uniform", s.ID, fx, fy)
						}
					}
				}
			}
		}
		best, bestD, second := "", 99, 99
		for _, c := range Chars() {
			g := Glyph(c, 1)
			d := 0
			for y := 0; y < 7; y++ {
				for x := 0; x < 5; x++ {
					if g[y][x] != bits[y][x] {
						d++
					}
				}
			}
			switch {
			case d < bestD:
				best, bestD, second = c, d, bestD
			case d < second:
				second = d
			}
		}
		if best != tx.Char || bestD != 0 || second < 3 {
			t.Fatalf("%s: read %q (distance %d, runner-up %d), wrote %q", s.ID, best, bestD, second, tx.Char)
		}
		read++
	}
	if read < 500 {
		t.Fatalf("only %d characters in the default world", read)
	}
}

func dist2(a, b [3]int) int {
	d := 0
	for i := range a {
		d += (a[i] - b[i]) * (a[i] - b[i])
	}
	return d
}
