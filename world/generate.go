package world

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
)

// SystemPrompt and the role markers are the fixed strings of TinyLLaVA's
// qwen2_base template.
const (
	SystemPrompt = "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions."
	UserRole     = "USER:"
	AssistRole   = "ASSISTANT:"
)

// ManifestVersion is bumped whenever the generated content changes for a
// given Config.
const ManifestVersion = 1

// NumPopular is how many of the dataset's most frequent objects form POPE's
// "popular" negative pool.
const NumPopular = 7

// Vocab is the world's vocabulary.
type Vocab struct {
	Shapes        []string            `json:"shapes"`
	Colours       []string            `json:"colours"`
	Sizes         []string            `json:"sizes"`
	Chars         []string            `json:"chars"`
	Popular       []string            `json:"popular"`         // POPE popular objects, most frequent first
	Answers       []string            `json:"answers"`         // every QA answer, sorted
	AnswersByType map[string][]string `json:"answers_by_type"` // sorted per type
}

// Manifest describes a generated world. Samples and scenes are held in
// memory after Generate or LoadManifest.
type Manifest struct {
	Version        int                       `json:"version"`
	Config         Config                    `json:"config"`
	Images         map[string]int            `json:"images"`          // per split
	Counts         map[string]map[string]int `json:"counts"`          // split -> type -> samples
	PopeCounts     map[string]map[string]int `json:"pope_counts"`     // split -> POPE split -> exist samples
	TemplateCounts map[string]map[string]int `json:"template_counts"` // split -> template -> samples
	Vocab          Vocab                     `json:"vocab"`
	Files          map[string]string         `json:"files"` // relative path -> sha256 (JSON files; images are in Hash)
	Hash           string                    `json:"hash"`  // sha256 over every written file but manifest.json

	Dir      string              `json:"-"`
	samples  map[string][]Sample // split -> QA samples
	captions []Sample
	scenes   []*Scene
}

// Samples returns the QA samples of a split (train, val or test).
func (m *Manifest) Samples(split string) []Sample { return m.samples[split] }

// Captions returns the stage-1 caption samples (train images only).
func (m *Manifest) Captions() []Sample { return m.captions }

// Scenes returns every scene, train then val then test.
func (m *Manifest) Scenes() []*Scene { return m.scenes }

// deck deals items in freshly shuffled rounds, so each is used equally.
type deck[T any] struct {
	items []T
	left  []T // the current round
	rng   *rand.Rand
}

// take deals the first item of the round that ok accepts; if none is left
// in the round, a new round starts (the rejected items are dropped).
func (d *deck[T]) take(ok func(T) bool) (T, bool) {
	for round := 0; round < 2; round++ {
		for i, x := range d.left {
			if ok(x) {
				d.left = slices.Delete(d.left, i, i+1)
				return x, true
			}
		}
		d.left = slices.Clone(d.items)
		d.rng.Shuffle(len(d.left), func(i, j int) { d.left[i], d.left[j] = d.left[j], d.left[i] })
	}
	var zero T
	return zero, false
}

// countWants are the planned count questions: every template with every
// answer it can have.
func countWants(cfg Config) []want {
	var ws []want
	for i := 0; i <= cfg.MaxObjects; i++ {
		ws = append(ws, want{"count/shape", fmt.Sprint(i)}, want{"count/colour", fmt.Sprint(i)})
		if i >= cfg.MinObjects {
			ws = append(ws, want{"count/total", fmt.Sprint(i)})
		}
	}
	return ws
}

// ocrWants are the planned ocr questions: each template with each character.
func ocrWants() []want {
	var ws []want
	for _, c := range Letters {
		ws = append(ws, want{"ocr/letter", c}, want{"ocr/letter_on", c})
	}
	for _, c := range Digits {
		ws = append(ws, want{"ocr/number", c}, want{"ocr/number_on", c})
	}
	return ws
}

// build creates scenes and samples in memory, deterministically.
func build(cfg Config) (*Manifest, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	types := cfg.types()
	sg := newSceneGen(cfg)
	planRng := rand.New(rand.NewPCG(cfg.Seed, 0x504c414e00000003))
	noiseRng := rand.New(rand.NewPCG(cfg.Seed, 0x4e4f495345000004))
	sizes := map[string]int{SplitTrain: cfg.NumTrain, SplitVal: cfg.NumVal, SplitTest: cfg.NumTest}

	m := &Manifest{Version: ManifestVersion, Config: cfg, Images: sizes, samples: map[string][]Sample{}}
	m.Config.Types = slices.Clone(types)
	var plans []plan
	for _, split := range Splits {
		countDeck := &deck[want]{items: countWants(cfg), rng: planRng}
		ocrDeck := &deck[want]{items: ocrWants(), rng: planRng}
		typeDeck := &deck[string]{items: slices.Clone(types), rng: planRng}
		for i := 0; i < sizes[split]; i++ {
			p := plan{want: map[string]want{}}
			for len(p.types) < cfg.QuestionsPerImage {
				t, _ := typeDeck.take(func(t string) bool { return !slices.Contains(p.types, t) })
				p.types = append(p.types, t)
			}
			if slices.Contains(p.types, TypeCount) {
				spatial := slices.Contains(p.types, TypeSpatial)
				w, _ := countDeck.take(func(w want) bool { return !(spatial && w.tpl == "count/total" && w.answer < "2") })
				p.want[TypeCount] = w
			}
			if slices.Contains(p.types, TypeOCR) {
				w, _ := ocrDeck.take(func(want) bool { return true })
				p.want[TypeOCR] = w
				p.char = w.answer
				p.hosted = strings.HasSuffix(w.tpl, "_on") || planRng.IntN(2) == 0
			}
			sc, err := sg.scene(split, i, noiseRng.Uint64(), p)
			if err != nil {
				return nil, err
			}
			m.scenes = append(m.scenes, sc)
			plans = append(plans, p)
		}
	}

	// POPE popular objects: the most frequent (colour, shape) combos.
	freq := map[combo]int{}
	for _, sc := range m.scenes {
		for _, o := range sc.Objects {
			freq[combo{o.Colour, o.Shape}]++
		}
	}
	combos := allCombos()
	order := make([]int, len(combos))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return freq[combos[order[a]]] > freq[combos[order[b]]] })
	var popular []combo
	for _, i := range order[:NumPopular] {
		popular = append(popular, combos[i])
		m.Vocab.Popular = append(m.Vocab.Popular, combos[i].colour+" "+combos[i].shape)
	}

	k := 0
	for si, split := range Splits {
		b := newBalancer(rand.New(rand.NewPCG(cfg.Seed, 0x5155455354000010+uint64(si))))
		for i := 0; i < sizes[split]; i++ {
			sc, p := m.scenes[k], plans[k]
			k++
			f := facts(sc, popular, cfg)
			for j, typ := range p.types {
				s, err := b.question(f, fmt.Sprintf("%s-%d", sc.ID, j), typ, p)
				if err != nil {
					return nil, err
				}
				m.samples[split] = append(m.samples[split], s)
			}
			if split == SplitTrain {
				m.captions = append(m.captions, CaptionSample(sc))
			}
		}
	}
	m.tally()
	return m, nil
}

// tally fills the counts and the vocabulary from the samples.
func (m *Manifest) tally() {
	m.Counts, m.PopeCounts, m.TemplateCounts = map[string]map[string]int{}, map[string]map[string]int{}, map[string]map[string]int{}
	byType := map[string]map[string]bool{}
	all := map[string]bool{}
	for _, split := range Splits {
		m.Counts[split], m.PopeCounts[split], m.TemplateCounts[split] = map[string]int{}, map[string]int{}, map[string]int{}
		for _, s := range m.samples[split] {
			m.Counts[split][s.Type]++
			m.TemplateCounts[split][s.Template]++
			if s.PopeSplit != "" {
				m.PopeCounts[split][s.PopeSplit]++
			}
			if byType[s.Type] == nil {
				byType[s.Type] = map[string]bool{}
			}
			byType[s.Type][s.Answer()] = true
			all[s.Answer()] = true
		}
	}
	if len(m.captions) > 0 {
		m.Counts[SplitTrain][TypeCaption] = len(m.captions)
	}
	keys := func(set map[string]bool) []string {
		var out []string
		for k := range set {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	m.Vocab.Shapes, m.Vocab.Colours, m.Vocab.Sizes, m.Vocab.Chars = Shapes, Colours, Sizes, Chars()
	m.Vocab.Answers = keys(all)
	m.Vocab.AnswersByType = map[string][]string{}
	for t, set := range byType {
		m.Vocab.AnswersByType[t] = keys(set)
	}
}

// Generate builds the world for cfg and writes it under outDir:
//
//	images/{split}_{index}.png   RGB PNGs
//	train.json, val.json, test.json   LLaVA JSON QA samples with type/split/template/pope_split metadata
//	captions.json                stage-1 caption samples of the train images
//	scenes.json                  every scene's full description (the ground truth)
//	manifest.json                config, counts, vocabulary, content hash
//
// Every file is written atomically (temp file + rename). Images are rendered
// concurrently; the output does not depend on cfg.Workers. Files of an older
// generation that this one does not write are left in place.
func Generate(cfg Config, outDir string) (*Manifest, error) {
	m, err := build(cfg)
	if err != nil {
		return nil, err
	}
	m.Dir = outDir
	if err := os.MkdirAll(filepath.Join(outDir, "images"), 0o755); err != nil {
		return nil, err
	}

	workers := cfg.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	imgHash := make([][32]byte, len(m.scenes))
	errs := make([]error, len(m.scenes))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				data, err := EncodePNG(m.scenes[i])
				if err == nil {
					err = writeAtomic(filepath.Join(outDir, m.scenes[i].Image), data, false)
				}
				imgHash[i], errs[i] = sha256.Sum256(data), err
			}
		}()
	}
	for i := range m.scenes {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}

	files := map[string]any{
		"train.json": orEmpty(m.samples[SplitTrain]), "val.json": orEmpty(m.samples[SplitVal]), "test.json": orEmpty(m.samples[SplitTest]),
		"captions.json": orEmpty(m.captions), "scenes.json": m.scenes,
	}
	m.Files = map[string]string{}
	for _, name := range sortedKeys(files) {
		data, err := json.MarshalIndent(files[name], "", " ")
		if err != nil {
			return nil, err
		}
		data = append(data, '\n')
		if err := writeAtomic(filepath.Join(outDir, name), data, true); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(data)
		m.Files[name] = hex.EncodeToString(sum[:])
	}
	h := sha256.New()
	for _, name := range sortedKeys(m.Files) {
		fmt.Fprintf(h, "%s %s\n", name, m.Files[name])
	}
	for i, sc := range m.scenes {
		fmt.Fprintf(h, "%s %x\n", sc.Image, imgHash[i])
	}
	m.Hash = hex.EncodeToString(h.Sum(nil))
	data, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(filepath.Join(outDir, "manifest.json"), append(data, '\n'), true); err != nil {
		return nil, err
	}
	return m, nil
}

func orEmpty[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, cmp.Compare)
	return ks
}

// writeAtomic writes data to a temporary file beside path and renames it
// into place; sync also flushes it to disk first.
func writeAtomic(path string, data []byte, sync bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// LoadManifest reads a generated world back from dir.
func LoadManifest(dir string) (*Manifest, error) {
	m := &Manifest{Dir: dir, samples: map[string][]Sample{}}
	read := func(name string, v any) error {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, v); err != nil {
			return fmt.Errorf("world: %s: %w", name, err)
		}
		return nil
	}
	if err := read("manifest.json", m); err != nil {
		return nil, err
	}
	for _, split := range Splits {
		var ss []Sample
		if err := read(split+".json", &ss); err != nil {
			return nil, err
		}
		m.samples[split] = ss
	}
	if err := read("captions.json", &m.captions); err != nil {
		return nil, err
	}
	if err := read("scenes.json", &m.scenes); err != nil {
		return nil, err
	}
	return m, nil
}

// ReadSamples reads a LLaVA JSON file of samples (e.g. test.json).
func ReadSamples(path string) ([]Sample, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ss []Sample
	if err := json.Unmarshal(data, &ss); err != nil {
		return nil, fmt.Errorf("world: %s: %w", path, err)
	}
	return ss, nil
}

// Corpus returns every text of the world, for training a small tokenizer:
// the qwen2_base template's fixed strings (system prompt, "USER:",
// "ASSISTANT:"), then each caption sample's and each QA sample's question
// (without "<image>\n") and answer, train then val then test, in file order.
// Texts repeat as often as they occur, so frequencies are meaningful.
func Corpus(m *Manifest) []string {
	out := []string{SystemPrompt, UserRole, AssistRole}
	add := func(ss []Sample) {
		for _, s := range ss {
			out = append(out, s.Question(), s.Answer())
		}
	}
	add(m.captions)
	for _, split := range Splits {
		add(m.samples[split])
	}
	return out
}
