package world

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// Object is one coloured shape in a scene. BBox is {x0, y0, x1, y1} in
// pixels, x1 and y1 exclusive; the shape is inscribed in it.
type Object struct {
	Shape  string   `json:"shape"`
	Colour string   `json:"colour"`
	Size   string   `json:"size"`
	Row    int      `json:"row"`
	Col    int      `json:"col"`
	BBox   [4]int   `json:"bbox"`
	RGB    [3]uint8 `json:"rgb"`
}

// Name is the object's referring phrase, "{colour} {shape}".
func (o Object) Name() string { return o.Colour + " " + o.Shape }

// Text is the scene's single character. Host is the index of the object it
// is printed on, or -1 when it stands alone in its own grid cell.
type Text struct {
	Char  string   `json:"char"`
	Kind  string   `json:"kind"` // "letter" or "digit"
	Host  int      `json:"host"`
	Row   int      `json:"row"`
	Col   int      `json:"col"`
	BBox  [4]int   `json:"bbox"`
	Scale int      `json:"scale"`
	RGB   [3]uint8 `json:"rgb"`
}

// Scene is the full description of one image; the image is a pure function
// of it (RenderScene).
type Scene struct {
	ID         string   `json:"id"`
	Image      string   `json:"image"` // path relative to the output directory
	Split      string   `json:"split"`
	Size       int      `json:"size"`
	Grid       int      `json:"grid"`
	Cell       int      `json:"cell"`
	Origin     int      `json:"origin"` // pixel offset of the grid in both axes
	Background [3]uint8 `json:"background"`
	NoiseSeed  uint64   `json:"noise_seed"`
	Objects    []Object `json:"objects"`
	Text       *Text    `json:"text,omitempty"`
}

// key identifies a scene's content up to pixel jitter; splits never share one.
func (s *Scene) key() string {
	var b strings.Builder
	objs := slices.Clone(s.Objects)
	slices.SortFunc(objs, func(a, b Object) int { return (a.Row*s.Grid + a.Col) - (b.Row*s.Grid + b.Col) })
	for _, o := range objs {
		fmt.Fprintf(&b, "%d,%d:%s %s %s;", o.Row, o.Col, o.Size, o.Colour, o.Shape)
	}
	if t := s.Text; t != nil {
		host := ""
		if t.Host >= 0 {
			host = s.Objects[t.Host].Name()
		}
		fmt.Fprintf(&b, "text %s %d,%d %s", t.Char, t.Row, t.Col, host)
	}
	return b.String()
}

// Caption is the scene's canonical description: objects in reading order
// (row-major), then a standalone character; e.g.
// "a large red circle and a small blue square with the number 7."
func (s *Scene) Caption() string {
	idx := make([]int, len(s.Objects))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		oa, ob := s.Objects[a], s.Objects[b]
		return (oa.Row*s.Grid + oa.Col) - (ob.Row*s.Grid + ob.Col)
	})
	var parts []string
	for _, i := range idx {
		o := s.Objects[i]
		p := "a " + o.Size + " " + o.Colour + " " + o.Shape
		if s.Text != nil && s.Text.Host == i {
			p += " with the " + s.Text.Kind + " " + s.Text.Char
		}
		parts = append(parts, p)
	}
	if s.Text != nil && s.Text.Host < 0 {
		parts = append(parts, "the "+s.Text.Kind+" "+s.Text.Char)
	}
	var out string
	switch len(parts) {
	case 1:
		out = parts[0]
	default:
		out = strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
	}
	return out + "."
}

// geometry of a configuration.
type geometry struct {
	size, grid, cell, origin, large, small, hostScale, textScale int
}

func geom(cfg Config) geometry {
	g := geometry{size: cfg.ImageSize, grid: cfg.Grid}
	g.cell = g.size / g.grid
	g.origin = (g.size - g.grid*g.cell) / 2
	g.large = (g.cell*86 + 50) / 100
	g.small = (g.cell*52 + 50) / 100
	g.hostScale = max(1, g.large*4/5/GlyphH)
	g.textScale = max(1, g.cell/GlyphH)
	return g
}

// combo is a (colour, shape) pair, indexed colour*len(Shapes)+shape.
type combo struct{ colour, shape string }

func allCombos() []combo {
	var cs []combo
	for _, c := range Colours {
		for _, s := range Shapes {
			cs = append(cs, combo{c, s})
		}
	}
	return cs
}

// plan fixes what an image must support before its scene is drawn.
type plan struct {
	types  []string
	want   map[string]want // per type: the template and answer to ask, when planned
	char   string          // "" : decide at random
	hosted bool            // for a planned char: print it on an object
}

// want is a planned (template, answer) pair; decks deal them evenly.
type want struct{ tpl, answer string }

// sceneGen draws scenes; weights skew how often each (colour, shape) combo
// appears (integer weights 200..98 in a seeded random order) so that POPE's
// "popular" split is meaningful.
type sceneGen struct {
	cfg     Config
	g       geometry
	rng     *rand.Rand
	combos  []combo
	weights []int
	seen    map[string]bool
}

func newSceneGen(cfg Config) *sceneGen {
	sg := &sceneGen{
		cfg: cfg, g: geom(cfg),
		rng:    rand.New(rand.NewPCG(cfg.Seed, 0x5343454e45000001)),
		combos: allCombos(),
		seen:   map[string]bool{},
	}
	perm := sg.rng.Perm(len(sg.combos))
	sg.weights = make([]int, len(sg.combos))
	for rank, i := range perm {
		sg.weights[i] = 200 - 3*rank
	}
	return sg
}

// pickCombo draws a combo passing ok, weighted, not already used.
func (sg *sceneGen) pickCombo(used map[combo]bool, ok func(combo) bool) (combo, bool) {
	total := 0
	for i, c := range sg.combos {
		if !used[c] && ok(c) {
			total += sg.weights[i]
		}
	}
	if total == 0 {
		return combo{}, false
	}
	r := sg.rng.IntN(total)
	for i, c := range sg.combos {
		if !used[c] && ok(c) {
			if r < sg.weights[i] {
				return c, true
			}
			r -= sg.weights[i]
		}
	}
	panic("unreachable")
}

func jitterRGB(rng *rand.Rand, c [3]uint8, amp int) [3]uint8 {
	var out [3]uint8
	for i, v := range c {
		out[i] = uint8(min(255, max(0, int(v)+rng.IntN(2*amp+1)-amp)))
	}
	return out
}

// scene draws one scene honouring p; it retries until the content is new.
func (sg *sceneGen) scene(split string, index int, noiseSeed uint64, p plan) (*Scene, error) {
	for attempt := 0; attempt < 2000; attempt++ {
		s, ok := sg.try(p, attempt)
		if !ok {
			continue
		}
		k := s.key()
		if sg.seen[k] {
			continue
		}
		sg.seen[k] = true
		s.ID = fmt.Sprintf("%s_%05d", split, index)
		s.Image = "images/" + s.ID + ".png"
		s.Split = split
		s.NoiseSeed = noiseSeed
		return s, nil
	}
	return nil, fmt.Errorf("world: could not draw a new scene for %s %d (world too small for the requested size)", split, index)
}

func (sg *sceneGen) try(p plan, attempt int) (*Scene, bool) {
	cfg, g, rng := sg.cfg, sg.g, sg.rng
	n := cfg.MinObjects + rng.IntN(cfg.MaxObjects-cfg.MinObjects+1)
	if slices.Contains(p.types, TypeSpatial) {
		n = max(n, 2)
	}
	countTpl, target := "", 0
	if w, ok := p.want[TypeCount]; ok {
		countTpl = w.tpl
		fmt.Sscan(w.answer, &target)
	}
	switch {
	case countTpl == "count/total":
		n = target
	case target > n:
		n = target
	}
	used := map[combo]bool{}
	var cs []combo
	if target > 0 && countTpl != "count/total" {
		byShape := countTpl == "count/shape"
		var v string
		if byShape {
			v = Shapes[rng.IntN(len(Shapes))]
		} else {
			v = Colours[rng.IntN(len(Colours))]
		}
		match := func(c combo) bool { return (byShape && c.shape == v) || (!byShape && c.colour == v) }
		for i := 0; i < n; i++ {
			c, ok := sg.pickCombo(used, func(c combo) bool { return match(c) == (i < target) })
			if !ok {
				return nil, false
			}
			used[c] = true
			cs = append(cs, c)
		}
		rng.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
	} else {
		for i := 0; i < n; i++ {
			c, _ := sg.pickCombo(used, func(combo) bool { return true })
			used[c] = true
			cs = append(cs, c)
		}
	}

	s := &Scene{Size: g.size, Grid: g.grid, Cell: g.cell, Origin: g.origin}
	s.Background = backgrounds[rng.IntN(len(backgrounds))]

	// The character: planned, or by chance.
	char, hosted := p.char, p.hosted
	if char == "" && rng.Float64() < cfg.CharProb {
		all := Chars()
		char = all[rng.IntN(len(all))]
		hosted = rng.IntN(2) == 0
	}
	host := -1
	if char != "" && hosted {
		var hosts []int
		for i, c := range cs {
			if c.shape == "circle" || c.shape == "square" {
				hosts = append(hosts, i)
			}
		}
		switch {
		case len(hosts) > 0:
			host = hosts[rng.IntN(len(hosts))]
		case attempt < 50:
			return nil, false // redraw: a planned host is missing
		}
	}

	items := len(cs)
	if char != "" && host < 0 {
		items++
	}
	cells := rng.Perm(g.grid * g.grid)[:items]
	for i, c := range cs {
		size := Sizes[rng.IntN(2)]
		if i == host {
			size = "large"
		}
		px := g.small
		if size == "large" {
			px = g.large
		}
		row, col := cells[i]/g.grid, cells[i]%g.grid
		slack := g.cell - px
		ox, oy := 0, 0
		if slack >= 2 {
			ox, oy = 1+rng.IntN(slack-1), 1+rng.IntN(slack-1)
		}
		x0, y0 := g.origin+col*g.cell+ox, g.origin+row*g.cell+oy
		s.Objects = append(s.Objects, Object{
			Shape: c.shape, Colour: c.colour, Size: size, Row: row, Col: col,
			BBox: [4]int{x0, y0, x0 + px, y0 + px},
			RGB:  jitterRGB(rng, colourRGB[c.colour], 10),
		})
	}
	if char != "" {
		t := &Text{Char: char, Kind: "letter", Host: host}
		if IsDigit(char) {
			t.Kind = "digit"
		}
		if host >= 0 {
			o := s.Objects[host]
			t.Scale = g.hostScale
			w, h := GlyphW*t.Scale, GlyphH*t.Scale
			x0 := o.BBox[0] + (o.BBox[2]-o.BBox[0]-w)/2
			y0 := o.BBox[1] + (o.BBox[3]-o.BBox[1]-h)/2
			t.Row, t.Col, t.BBox = o.Row, o.Col, [4]int{x0, y0, x0 + w, y0 + h}
			t.RGB = [3]uint8{255, 255, 255}
			if luma(o.RGB) > 127 { // black ink where it contrasts more than white
				t.RGB = [3]uint8{0, 0, 0}
			}
		} else {
			t.Scale = g.textScale
			w, h := GlyphW*t.Scale, GlyphH*t.Scale
			row, col := cells[items-1]/g.grid, cells[items-1]%g.grid
			x0 := g.origin + col*g.cell + rng.IntN(g.cell-w+1)
			y0 := g.origin + row*g.cell + rng.IntN(g.cell-h+1)
			t.Row, t.Col, t.BBox = row, col, [4]int{x0, y0, x0 + w, y0 + h}
			t.RGB = textRGB
		}
		s.Text = t
	}
	return s, true
}

// luma is the integer Rec. 601 luma of an RGB colour.
func luma(c [3]uint8) int { return (299*int(c[0]) + 587*int(c[1]) + 114*int(c[2])) / 1000 }
