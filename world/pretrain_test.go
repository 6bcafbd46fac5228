package world

import (
	"reflect"
	"testing"
)

func TestPretrainScenes(t *testing.T) {
	cfg := QuickConfig()
	m, err := build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pcfg := cfg
	pcfg.CharProb = 0.5
	const n = 400
	a, err := PretrainScenes(pcfg, n, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != n {
		t.Fatalf("%d scenes, want %d", len(a), n)
	}
	b, _ := PretrainScenes(pcfg, n, m)
	if !reflect.DeepEqual(a, b) {
		t.Error("PretrainScenes is not deterministic")
	}
	keys := map[string]bool{}
	for _, s := range m.Scenes() {
		keys[s.key()] = true
	}
	chars, objects := 0, 0
	for _, s := range a {
		if keys[s.key()] {
			t.Errorf("%s repeats the content of a world scene: %s", s.ID, s.key())
		}
		keys[s.key()] = true
		if s.Split != SplitPretrain || s.Size != cfg.ImageSize {
			t.Errorf("%s: split %q, size %d", s.ID, s.Split, s.Size)
		}
		if s.Text != nil {
			chars++
		}
		if len(s.Objects) < cfg.MinObjects || len(s.Objects) > cfg.MaxObjects {
			t.Errorf("%s: %d objects", s.ID, len(s.Objects))
		}
		objects += len(s.Objects)
	}
	if chars < n*4/10 || chars > n*6/10 {
		t.Errorf("%d of %d scenes have a character at CharProb 0.5", chars, n)
	}
	if avg := float64(objects) / n; avg < 2 || avg > 3 {
		t.Errorf("%.2f objects per scene, want about 2.5", avg)
	}
	if _, err := PretrainScenes(pcfg, -1, nil); err == nil {
		t.Error("a negative count passed")
	}
	bad := cfg
	bad.Grid = 1
	if _, err := PretrainScenes(bad, 1, nil); err == nil {
		t.Error("an invalid config passed")
	}
}
