package world

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	defaultOnce sync.Once
	defaultDir  string
	defaultM    *Manifest
	defaultErr  error
	tmpRoot     string
)

func TestMain(m *testing.M) {
	var err error
	tmpRoot, err = os.MkdirTemp("", "world-test-")
	if err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// defaultWorld generates the DefaultConfig world once per test binary.
func defaultWorld(t *testing.T) (string, *Manifest) {
	t.Helper()
	defaultOnce.Do(func() {
		defaultDir = filepath.Join(tmpRoot, "default")
		defaultM, defaultErr = Generate(DefaultConfig(), defaultDir)
	})
	if defaultErr != nil {
		t.Fatal(defaultErr)
	}
	return defaultDir, defaultM
}

// readTree maps every file under dir (relative path) to its bytes.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDeterminism(t *testing.T) {
	cfg := QuickConfig()
	cfg.Workers = 1
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	ma, err := Generate(cfg, a)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Workers = 7 // concurrency must not change a byte
	mb, err := Generate(cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	ta, tb := readTree(t, a), readTree(t, b)
	if len(ta) != len(tb) {
		t.Fatalf("file counts differ: %d vs %d", len(ta), len(tb))
	}
	for name, data := range ta {
		if strings.Contains(name, ".tmp") {
			t.Errorf("temporary file left behind: %s", name)
		}
		if !bytes.Equal(data, tb[name]) {
			t.Errorf("%s differs between two generations with one seed", name)
		}
	}
	if ma.Hash != mb.Hash || ma.Hash == "" {
		t.Fatalf("hashes %q vs %q", ma.Hash, mb.Hash)
	}
	wantFiles := 5 + cfg.NumTrain + cfg.NumVal + cfg.NumTest + 1 // json files + images + manifest
	if len(ta) != wantFiles {
		t.Errorf("got %d files, want %d", len(ta), wantFiles)
	}

	cfg.Seed = 2
	mc, err := Generate(cfg, c)
	if err != nil {
		t.Fatal(err)
	}
	if mc.Hash == ma.Hash {
		t.Fatal("another seed gave the same hash")
	}
	tc := readTree(t, c)
	same := 0
	for name, data := range ta {
		if strings.HasPrefix(name, "images/") && bytes.Equal(data, tc[name]) {
			same++
		}
	}
	if same > 0 || bytes.Equal(ta["train.json"], tc["train.json"]) {
		t.Errorf("another seed reproduced %d images / train.json", same)
	}
}

func TestQuickPresetIsFast(t *testing.T) {
	start := time.Now()
	m, err := Generate(QuickConfig(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("quick preset took %v", d)
	}
	n := len(m.Samples(SplitTrain)) + len(m.Samples(SplitVal)) + len(m.Samples(SplitTest))
	if n < 200 || n > 1000 {
		t.Errorf("quick preset has %d samples, want a few hundred", n)
	}
}

func TestDefaultSizes(t *testing.T) {
	_, m := defaultWorld(t)
	if n := len(m.Samples(SplitTrain)); n < 3000 || n > 6000 {
		t.Errorf("default train has %d samples, want 3000-6000", n)
	}
	cfg := DefaultConfig()
	for _, split := range Splits {
		per := map[string]int{}
		for _, s := range m.Samples(split) {
			per[s.Type]++
		}
		want := m.Images[split] * cfg.QuestionsPerImage
		if len(m.Samples(split)) != want {
			t.Errorf("%s: %d samples, want %d", split, len(m.Samples(split)), want)
		}
		for _, typ := range QATypes {
			if per[typ] != m.Counts[split][typ] {
				t.Errorf("%s/%s: manifest says %d, have %d", split, typ, m.Counts[split][typ], per[typ])
			}
			// Types are dealt evenly.
			if d := per[typ]*len(QATypes) - want; d < -len(QATypes) || d > len(QATypes) {
				t.Errorf("%s/%s: %d of %d samples, uneven", split, typ, per[typ], want)
			}
		}
	}
	if len(m.Captions()) != cfg.NumTrain || m.Counts[SplitTrain][TypeCaption] != cfg.NumTrain {
		t.Errorf("captions: %d", len(m.Captions()))
	}
}

func TestFilesAreLLaVA(t *testing.T) {
	dir, m := defaultWorld(t)
	ids := map[string]bool{}
	for _, name := range []string{"train.json", "val.json", "test.json", "captions.json"} {
		var raw []map[string]any
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatal(err)
		}
		if len(raw) == 0 {
			t.Fatalf("%s is empty", name)
		}
		for _, r := range raw {
			id, _ := r["id"].(string)
			img, _ := r["image"].(string)
			if id == "" || ids[id] {
				t.Fatalf("%s: missing or repeated id %q", name, id)
			}
			ids[id] = true
			if _, err := os.Stat(filepath.Join(dir, img)); err != nil {
				t.Fatalf("%s: image %q: %v", id, img, err)
			}
			conv, _ := r["conversations"].([]any)
			if len(conv) != 2 {
				t.Fatalf("%s: %d turns", id, len(conv))
			}
			h, g := conv[0].(map[string]any), conv[1].(map[string]any)
			if h["from"] != "human" || g["from"] != "gpt" {
				t.Fatalf("%s: roles %v %v", id, h["from"], g["from"])
			}
			q, _ := h["value"].(string)
			a, _ := g["value"].(string)
			if !strings.HasPrefix(q, "<image>\n") || strings.Count(q, "<image>") != 1 || a == "" {
				t.Fatalf("%s: bad turns %q -> %q", id, q, a)
			}
			typ, _ := r["type"].(string)
			if name == "captions.json" {
				if typ != TypeCaption || r["split"] != SplitTrain || !strings.HasPrefix(img, "images/train_") {
					t.Fatalf("caption sample %s from %v/%v", id, r["split"], img)
				}
			} else if !slices.Contains(QATypes, typ) || r["split"] != strings.TrimSuffix(name, ".json") {
				t.Fatalf("%s: type %q split %v in %s", id, typ, r["split"], name)
			}
			if _, has := r["pope_split"]; has != (typ == TypeExist) {
				t.Fatalf("%s: pope_split present=%v for type %s", id, has, typ)
			}
		}
	}

	// The manifest on disk reloads to the same content.
	lm, err := LoadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if lm.Hash != m.Hash || len(lm.Scenes()) != len(m.Scenes()) || len(lm.Samples(SplitTest)) != len(m.Samples(SplitTest)) {
		t.Fatal("LoadManifest does not round-trip")
	}
	if !slices.Equal(Corpus(lm), Corpus(m)) {
		t.Fatal("Corpus differs after reload")
	}
	corpus := Corpus(m)
	for _, want := range []string{SystemPrompt, "USER:", "ASSISTANT:", "Describe the image.", "Yes", "No", MCInstruction} {
		if !slices.ContainsFunc(corpus, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("corpus lacks %q", want)
		}
	}
	if got, want := len(corpus), 3+2*(len(m.Captions())+len(m.Samples(SplitTrain))+len(m.Samples(SplitVal))+len(m.Samples(SplitTest))); got != want {
		t.Errorf("corpus has %d texts, want %d", got, want)
	}
	for _, s := range corpus {
		if strings.Contains(s, "<image>") {
			t.Fatalf("corpus text keeps <image>: %q", s)
		}
	}
	var mf map[string]any
	data, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err := json.Unmarshal(data, &mf); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"config", "counts", "vocab", "hash", "pope_counts"} {
		if _, ok := mf[k]; !ok {
			t.Errorf("manifest.json lacks %q", k)
		}
	}
	for _, a := range []string{"Yes", "No", "A", "D", "0", "4", "red", "ring", "large", "K", "9"} {
		if !slices.Contains(m.Vocab.Answers, a) {
			t.Errorf("answer vocabulary lacks %q", a)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	bad := []func(*Config){
		func(c *Config) { c.ImageSize = 16 },
		func(c *Config) { c.Grid = 7 },
		func(c *Config) { c.MaxObjects = 5 },
		func(c *Config) { c.MinObjects = 0 },
		func(c *Config) { c.QuestionsPerImage = 7 },
		func(c *Config) { c.Types = []string{"exist", "exist"} },
		func(c *Config) { c.Types = []string{"caption"}; c.QuestionsPerImage = 1 },
		func(c *Config) { c.NumTrain, c.NumVal, c.NumTest = 0, 0, 0 },
		func(c *Config) { c.CharProb = 2 },
	}
	for i, f := range bad {
		c := QuickConfig()
		f(&c)
		if _, err := Generate(c, t.TempDir()); err == nil {
			t.Errorf("bad config %d accepted", i)
		}
	}
	// A narrower world still generates: only two types, bigger images.
	c := QuickConfig()
	c.ImageSize, c.Types, c.QuestionsPerImage = 96, []string{TypeOCR, TypeCount}, 2
	dir := t.TempDir()
	m, err := Generate(c, dir)
	if err != nil {
		t.Fatal(err)
	}
	verifyWorld(t, dir, m)
	for _, s := range m.Samples(SplitTrain) {
		if s.Type != TypeOCR && s.Type != TypeCount {
			t.Fatalf("unexpected type %s", s.Type)
		}
	}
	if got := m.Scenes()[0].Size; got != 96 {
		t.Fatalf("image size %d", got)
	}
}

// decodePNG reads a generated image and checks it is 8-bit RGB.
func decodePNG(t *testing.T, path string) *image.RGBA {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	rgba, ok := img.(*image.RGBA)
	if !ok {
		t.Fatalf("%s decodes as %T (model %v), want opaque RGB", path, img, cfg.ColorModel)
	}
	return rgba
}

func ExampleScene_Caption() {
	s := &Scene{Grid: 3, Objects: []Object{
		{Shape: "square", Colour: "blue", Size: "small", Row: 1, Col: 0},
		{Shape: "circle", Colour: "red", Size: "large", Row: 0, Col: 2},
	}, Text: &Text{Char: "7", Kind: "digit", Host: 0}}
	fmt.Println(s.Caption())
	// Output: a large red circle and a small blue square with the digit 7.
}
