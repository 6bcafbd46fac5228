package world

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// Turn is one LLaVA conversation turn.
type Turn struct {
	From  string `json:"from"`
	Value string `json:"value"`
}

// Sample is one LLaVA JSON record. The keys beyond id/image/conversations
// carry the metadata evaluation needs; LLaVA readers ignore them.
type Sample struct {
	ID            string   `json:"id"`
	Image         string   `json:"image"`
	Conversations []Turn   `json:"conversations"`
	Type          string   `json:"type"`
	Split         string   `json:"split"`
	Template      string   `json:"template"`
	PopeSplit     string   `json:"pope_split,omitempty"`
	Options       []string `json:"options,omitempty"` // mc: option texts in letter order
}

// ImagePrefix starts every human turn.
const ImagePrefix = "<image>\n"

// MCInstruction ends every multiple-choice question.
const MCInstruction = "Answer with the option's letter from the given choices directly."

// CaptionQuestion is the stage-1 prompt.
const CaptionQuestion = "Describe the image."

// Question is the human turn without the "<image>\n" prefix.
func (s Sample) Question() string {
	if len(s.Conversations) == 0 {
		return ""
	}
	return strings.TrimPrefix(s.Conversations[0].Value, ImagePrefix)
}

// Answer is the gpt turn.
func (s Sample) Answer() string {
	if len(s.Conversations) < 2 {
		return ""
	}
	return s.Conversations[1].Value
}

// QA is the scoring view of a sample.
func (s Sample) QA() QA {
	return QA{ID: s.ID, Type: s.Type, PopeSplit: s.PopeSplit, Answer: s.Answer()}
}

func newSample(sc *Scene, id, typ, tpl, q, a string) Sample {
	return Sample{
		ID: id, Image: sc.Image, Type: typ, Split: sc.Split, Template: tpl,
		Conversations: []Turn{{From: "human", Value: ImagePrefix + q}, {From: "gpt", Value: a}},
	}
}

// CaptionSample is the stage-1 caption record of a scene.
func CaptionSample(sc *Scene) Sample {
	return newSample(sc, sc.ID+"-caption", TypeCaption, "caption", CaptionQuestion, sc.Caption())
}

// cand is a candidate question for a scene.
type cand struct {
	tpl, q, a string
	nA        int      // number of possible answers of the template
	distract  []string // mc: distractor pool
	objects   bool     // mc: distractors are object names; top up with absent objects
}

// balancer chooses questions so answers stay balanced per template and per
// exact question text, within one split.
type balancer struct {
	rng     *rand.Rand
	tplN    map[string]int
	tplAns  map[string]map[string]int
	qAns    map[string]map[string]int
	qN      map[string]int
	letters map[string]*[4]int // per template
	pope    int
}

func newBalancer(rng *rand.Rand) *balancer {
	return &balancer{rng: rng, tplN: map[string]int{}, tplAns: map[string]map[string]int{},
		qAns: map[string]map[string]int{}, qN: map[string]int{}, letters: map[string]*[4]int{}}
}

func inc(m map[string]map[string]int, k, a string) {
	if m[k] == nil {
		m[k] = map[string]int{}
	}
	m[k][a]++
}

// choose picks a candidate: the least used template first, then the answer
// least used for that template, then the question text whose answers are
// the most under-represented for that answer. Ties break at random.
func (b *balancer) choose(cs []cand) cand {
	var tpls []string
	for _, c := range cs {
		if !slices.Contains(tpls, c.tpl) {
			tpls = append(tpls, c.tpl)
		}
	}
	best, bestN := []string{}, 0
	for _, t := range tpls {
		switch n := b.tplN[t]; {
		case len(best) == 0 || n < bestN:
			best, bestN = []string{t}, n
		case n == bestN:
			best = append(best, t)
		}
	}
	tpl := best[b.rng.IntN(len(best))]
	var pick []cand
	bestCost := 0
	for _, c := range cs {
		if c.tpl != tpl {
			continue
		}
		cost := 1_000_000*b.tplAns[tpl][c.a] + c.nA*b.qAns[c.q][c.a] - b.qN[c.q]
		switch {
		case len(pick) == 0 || cost < bestCost:
			pick, bestCost = []cand{c}, cost
		case cost == bestCost:
			pick = append(pick, c)
		}
	}
	c := pick[b.rng.IntN(len(pick))]
	b.tplN[tpl]++
	inc(b.tplAns, tpl, c.a)
	inc(b.qAns, c.q, c.a)
	b.qN[c.q]++
	return c
}

// letter picks the least used mc answer letter of a template (ties at random).
func (b *balancer) letter(tpl string) int {
	if b.letters[tpl] == nil {
		b.letters[tpl] = new([4]int)
	}
	counts := b.letters[tpl]
	m := slices.Min(counts[:])
	var ls []int
	for i, n := range counts {
		if n == m {
			ls = append(ls, i)
		}
	}
	l := ls[b.rng.IntN(len(ls))]
	counts[l]++
	return l
}

// sceneFacts gathers what questions need about a scene.
type sceneFacts struct {
	sc          *Scene
	shapeN      map[string]int
	colourN     map[string]int
	present     map[combo]bool
	popular     []combo // dataset-wide most frequent combos, most frequent first
	maxCount    int
	minTotal    int
	totalAnswer int
}

func facts(sc *Scene, popular []combo, cfg Config) *sceneFacts {
	f := &sceneFacts{sc: sc, shapeN: map[string]int{}, colourN: map[string]int{}, present: map[combo]bool{},
		popular: popular, maxCount: cfg.MaxObjects, minTotal: cfg.MinObjects}
	for _, o := range sc.Objects {
		f.shapeN[o.Shape]++
		f.colourN[o.Colour]++
		f.present[combo{o.Colour, o.Shape}] = true
	}
	return f
}

// direction words and their tests on (item, reference) cells.
var directions = []struct {
	name, phrase string
	test         func(r, c, r0, c0 int) bool
}{
	{"right", "to the right of", func(r, c, r0, c0 int) bool { return c > c0 }},
	{"left", "to the left of", func(r, c, r0, c0 int) bool { return c < c0 }},
	{"above", "above", func(r, c, r0, c0 int) bool { return r < r0 }},
	{"below", "below", func(r, c, r0, c0 int) bool { return r > r0 }},
}

// candidates enumerates every valid question of a type for a scene.
func (f *sceneFacts) candidates(typ, popeSplit string) []cand {
	sc := f.sc
	var cs []cand
	add := func(tpl, q, a string, nA int) { cs = append(cs, cand{tpl: tpl, q: q, a: a, nA: nA}) }
	switch typ {
	case TypeExist:
		tpl := "exist/" + popeSplit
		q := func(c combo) string { return fmt.Sprintf("Is there a %s %s in the image?", c.colour, c.shape) }
		for _, o := range sc.Objects {
			add(tpl, q(combo{o.Colour, o.Shape}), "Yes", 2)
		}
		var neg []combo
		switch popeSplit {
		case PopeRandom:
			for _, c := range allCombos() {
				if !f.present[c] {
					neg = append(neg, c)
				}
			}
		case PopePopular:
			for _, c := range f.popular {
				if !f.present[c] {
					neg = append(neg, c)
				}
			}
		case PopeAdversarial: // one attribute away from a present object
			for _, c := range allCombos() {
				if f.present[c] {
					continue
				}
				for p := range f.present {
					if (p.colour == c.colour) != (p.shape == c.shape) {
						neg = append(neg, c)
						break
					}
				}
			}
		}
		for _, c := range neg {
			add(tpl, q(c), "No", 2)
		}
	case TypeAttribute:
		for _, o := range sc.Objects {
			if f.shapeN[o.Shape] == 1 {
				add("attribute/colour_of_shape", fmt.Sprintf("What colour is the %s?", o.Shape), o.Colour, len(Colours))
				add("attribute/size_of_shape", fmt.Sprintf("Is the %s large or small?", o.Shape), o.Size, 2)
			}
			if f.colourN[o.Colour] == 1 {
				add("attribute/shape_of_colour", fmt.Sprintf("What shape is the %s object?", o.Colour), o.Shape, len(Shapes))
			}
			add("attribute/size_of_object", fmt.Sprintf("Is the %s large or small?", o.Name()), o.Size, 2)
		}
	case TypeCount:
		for _, s := range Shapes {
			add("count/shape", fmt.Sprintf("How many %s are there?", Plural(s)), fmt.Sprint(f.shapeN[s]), f.maxCount+1)
		}
		for _, c := range Colours {
			add("count/colour", fmt.Sprintf("How many %s objects are there?", c), fmt.Sprint(f.colourN[c]), f.maxCount+1)
		}
		add("count/total", "How many shapes are there?", fmt.Sprint(len(sc.Objects)), f.maxCount-f.minTotal+1)
	case TypeSpatial:
		os := sc.Objects
		for i, a := range os {
			for j, b := range os {
				if i == j {
					continue
				}
				yn := func(ok bool) string {
					if ok {
						return "Yes"
					}
					return "No"
				}
				if a.Col != b.Col {
					add("spatial/left", fmt.Sprintf("Is the %s to the left of the %s?", a.Name(), b.Name()), yn(a.Col < b.Col), 2)
					add("spatial/right", fmt.Sprintf("Is the %s to the right of the %s?", a.Name(), b.Name()), yn(a.Col > b.Col), 2)
				}
				if a.Row != b.Row {
					add("spatial/above", fmt.Sprintf("Is the %s above the %s?", a.Name(), b.Name()), yn(a.Row < b.Row), 2)
					add("spatial/below", fmt.Sprintf("Is the %s below the %s?", a.Name(), b.Name()), yn(a.Row > b.Row), 2)
				}
			}
			for _, d := range directions {
				if o, ok := f.onlyItem(func(r, c int) bool { return d.test(r, c, a.Row, a.Col) }); ok {
					add("spatial/what_"+d.name, fmt.Sprintf("What is %s the %s?", d.phrase, a.Name()), o.Name(), len(Colours)*len(Shapes))
				}
			}
		}
	case TypeMC:
		nCombos := len(Colours) * len(Shapes)
		for _, o := range sc.Objects {
			if f.shapeN[o.Shape] == 1 {
				cs = append(cs, cand{tpl: "mc/colour_of_shape", q: fmt.Sprintf("What colour is the %s?", o.Shape),
					a: o.Colour, nA: len(Colours), distract: without(Colours, o.Colour)})
			}
			if f.colourN[o.Colour] == 1 {
				cs = append(cs, cand{tpl: "mc/shape_of_colour", q: fmt.Sprintf("What shape is the %s object?", o.Colour),
					a: o.Shape, nA: len(Shapes), distract: without(Shapes, o.Shape)})
			}
		}
		var nums []string
		for i := 0; i <= f.maxCount; i++ {
			nums = append(nums, fmt.Sprint(i))
		}
		for _, s := range Shapes {
			n := fmt.Sprint(f.shapeN[s])
			cs = append(cs, cand{tpl: "mc/count_shape", q: fmt.Sprintf("How many %s are there?", Plural(s)),
				a: n, nA: len(nums), distract: without(nums, n)})
		}
		if o, ok := f.onlyItem(func(r, c int) bool { return c == f.minCol() }); ok {
			// Distractors: the other objects in the scene first, then absent ones.
			var pool []string
			for _, p := range sc.Objects {
				if p.Name() != o.Name() {
					pool = append(pool, p.Name())
				}
			}
			cs = append(cs, cand{tpl: "mc/leftmost", q: "Which object is furthest to the left?",
				a: o.Name(), nA: nCombos, distract: pool, objects: true})
		}
		if t := sc.Text; t != nil {
			cs = append(cs, cand{tpl: "mc/char", q: "Which character is written in the image?",
				a: t.Char, nA: len(Chars()), distract: without(Chars(), t.Char)})
		}
	case TypeOCR:
		if t := sc.Text; t != nil {
			word, tplw := "letter", "letter"
			nA := len(Letters)
			if t.Kind == "digit" {
				word, tplw, nA = "number", "number", len(Digits)
			}
			add("ocr/"+tplw, fmt.Sprintf("What %s is written in the image?", word), t.Char, nA)
			if t.Host >= 0 {
				add("ocr/"+tplw+"_on", fmt.Sprintf("What is the %s on the %s?", word, sc.Objects[t.Host].Name()), t.Char, nA)
			}
		}
	}
	return cs
}

// onlyItem returns the object that is the only item (object or standalone
// character) whose cell satisfies in; false if there are zero, several, or the
// only one is the character.
func (f *sceneFacts) onlyItem(in func(r, c int) bool) (Object, bool) {
	var found []Object
	n := 0
	for _, o := range f.sc.Objects {
		if in(o.Row, o.Col) {
			found = append(found, o)
			n++
		}
	}
	if t := f.sc.Text; t != nil && t.Host < 0 && in(t.Row, t.Col) {
		n++
	}
	if n != 1 || len(found) != 1 {
		return Object{}, false
	}
	return found[0], true
}

func (f *sceneFacts) minCol() int {
	m := f.sc.Grid
	for _, o := range f.sc.Objects {
		m = min(m, o.Col)
	}
	if t := f.sc.Text; t != nil && t.Host < 0 {
		m = min(m, t.Col)
	}
	return m
}

func without(xs []string, x string) []string {
	return slices.DeleteFunc(slices.Clone(xs), func(s string) bool { return s == x })
}

// mcOptions lays out a multiple-choice candidate's options with the correct
// one at letter index l.
func (b *balancer) mcOptions(c cand, l int) []string {
	pool := slices.Clone(c.distract)
	var ds []string
	if c.objects {
		b.rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
		ds = append(ds, pool[:min(3, len(pool))]...)
		// Fill with objects absent from the scene, at random.
		if len(ds) < 3 {
			var absent []string
			for _, cb := range allCombos() {
				n := cb.colour + " " + cb.shape
				if n != c.a && !slices.Contains(c.distract, n) {
					absent = append(absent, n)
				}
			}
			b.rng.Shuffle(len(absent), func(i, j int) { absent[i], absent[j] = absent[j], absent[i] })
			ds = append(ds, absent[:3-len(ds)]...)
		}
	} else {
		b.rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
		ds = pool[:3]
	}
	b.rng.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
	opts := make([]string, 0, 4)
	opts = append(opts, ds[:l]...)
	opts = append(opts, c.a)
	opts = append(opts, ds[l:]...)
	return opts
}

// MCQuestion formats a multiple-choice question.
func MCQuestion(stem string, options []string) string {
	var b strings.Builder
	b.WriteString(stem)
	for i, o := range options {
		fmt.Fprintf(&b, "\n%c. %s", 'A'+i, o)
	}
	b.WriteString("\n" + MCInstruction)
	return b.String()
}

// question draws one question of type typ for a scene; when the plan wants
// a template and answer for this type, candidates are narrowed to them.
func (b *balancer) question(f *sceneFacts, id, typ string, p plan) (Sample, error) {
	pope := ""
	if typ == TypeExist {
		pope = PopeSplits[b.pope%len(PopeSplits)]
		b.pope++
	}
	cs := f.candidates(typ, pope)
	if w, ok := p.want[typ]; ok {
		hit := slices.DeleteFunc(slices.Clone(cs), func(c cand) bool { return c.tpl != w.tpl || c.a != w.answer })
		if len(hit) > 0 {
			cs = hit
		}
	}
	if len(cs) == 0 {
		return Sample{}, fmt.Errorf("world: no %s question for scene %s", typ, f.sc.ID)
	}
	c := b.choose(cs)
	if typ != TypeMC {
		s := newSample(f.sc, id, typ, c.tpl, c.q, c.a)
		s.PopeSplit = pope
		return s, nil
	}
	l := b.letter(c.tpl)
	opts := b.mcOptions(c, l)
	s := newSample(f.sc, id, typ, c.tpl, MCQuestion(c.q, opts), string(rune('A'+l)))
	s.Options = opts
	return s, nil
}
