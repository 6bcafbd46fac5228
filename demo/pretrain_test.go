package demo

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/switchkd/switchkd/data"
	"github.com/switchkd/switchkd/engine"
	"github.com/switchkd/switchkd/world"
)

func TestPatchLabels(t *testing.T) {
	s := &world.Scene{Size: 64, Grid: 3, Cell: 21, Origin: 0,
		Objects: []world.Object{
			{Shape: "ring", Colour: "pink", Size: "small", Row: 0, Col: 2, BBox: [4]int{50, 1, 61, 12}},
			{Shape: "circle", Colour: "red", Size: "large", Row: 2, Col: 1, BBox: [4]int{22, 43, 40, 61}},
			{Shape: "square", Colour: "blue", Size: "small", Row: 2, Col: 0, BBox: [4]int{10, 44, 21, 55}}},
		Text: &world.Text{Char: "7", Host: 1, Row: 2, Col: 1, BBox: [4]int{26, 46, 36, 60}}}
	lb := PatchLabels(s, 8)
	nh := len(ProbeHeads())
	if len(lb) != 64*nh {
		t.Fatalf("%d labels, want %d", len(lb), 64*nh)
	}
	at := func(r, c int) []int32 { return lb[(r*8+c)*nh : (r*8+c+1)*nh] }
	for _, c := range []struct {
		r, c int
		want []int32
		what string
	}{
		{0, 7, []int32{5, 7, 2, 0}, "the small pink ring"},
		{6, 3, []int32{1, 1, 1, 12 + 5 + 1}, "the large red circle with the digit 7"},
		{6, 2, []int32{2, 5, 2, 0}, "the blue square (35 px of the patch) rather than the circle (16 px)"},
		{0, 0, []int32{0, 0, 0, 0}, "nothing"},
	} {
		if got := at(c.r, c.c); !slices.Equal(got, c.want) {
			t.Errorf("patch (%d,%d): %v, want %v (%s)", c.r, c.c, got, c.want, c.what)
		}
	}
}

// TestPretrainVision: a short pre-training run lowers the probe's loss and beats each head's
// majority class on held-out scenes (the world's test scenes, which pre-training never sees).
// SWITCHKD_PRETRAIN_{STEPS,BATCH,LR,EMPTY} override the recipe for experiments.
func TestPretrainVision(t *testing.T) {
	cfg, m := smallWorld(t, t.TempDir(), 10, 60)
	rc := PretrainRecipe{Scenes: 1600, CharProb: 0.5, Steps: 100, Batch: 16, LR: 5e-3, WarmupRatio: 0.05, EmptyWeight: 1, Shards: 2}
	if s := os.Getenv("SWITCHKD_PRETRAIN_EMPTY"); s != "" {
		rc.EmptyWeight, _ = strconv.ParseFloat(s, 64)
	}
	if s := os.Getenv("SWITCHKD_PRETRAIN_LR"); s != "" {
		rc.LR, _ = strconv.ParseFloat(s, 64)
	}
	if s := os.Getenv("SWITCHKD_PRETRAIN_STEPS"); s != "" {
		rc.Steps, _ = strconv.Atoi(s)
		rc.Scenes = rc.Steps * rc.Batch
	}
	if s := os.Getenv("SWITCHKD_PRETRAIN_BATCH"); s != "" {
		rc.Batch, _ = strconv.Atoi(s)
		rc.Scenes = rc.Steps * rc.Batch
	}
	pcfg := cfg
	pcfg.CharProb = rc.CharProb
	scenes, err := world.PretrainScenes(pcfg, rc.Scenes, m)
	if err != nil {
		t.Fatal(err)
	}
	var test []*world.Scene
	for _, s := range m.Scenes() {
		if s.Split == world.SplitTest {
			test = append(test, s)
		}
	}
	b := engine.MustBackend("")
	model, err := NewModel(DefaultProfile().Teacher, 512, 0, cfg.ImageSize, 1, nil, filepath.Join(t.TempDir(), "assets"), b)
	if err != nil {
		t.Fatal(err)
	}
	res, err := PretrainVision(model, data.DefaultPreprocessConfig(cfg.ImageSize), scenes, test, rc, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.LastLoss > 0.5*res.FirstLoss {
		t.Errorf("loss %.3f -> %.3f: pre-training did not learn", res.FirstLoss, res.LastLoss)
	}
	// Colour is learned first, then size, then shape (85% after the default 800 steps); 100
	// steps already put each well above naming the most frequent class.
	for h, margin := range map[string]float64{"colour": 50, "size": 5, "shape": 5} {
		if res.HeldOut[h] < res.Chance[h]+margin {
			t.Errorf("%s: held-out accuracy %.1f%%, chance %.1f%%, want %g points above", h, res.HeldOut[h], res.Chance[h], margin)
		}
	}
}
