package train

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadRunConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "run.yaml")
	os.WriteFile(p, []byte(`
student: s
out: o
objective: {tau: 2, align: bild}
stages:
  - {name: connector, steps: 5, lr: 1.0e-3, train: [connector], objective: {w_align: 0, w_vsd: 0}}
  - {name: switchkd, steps: 7, lr: 2.0e-5, warmup_ratio: 0.1, train: [vision_tower, connector, llm]}
`), 0o644)
	cfg, err := LoadRunConfig(p, []string{"stages.1.lr=5e-5", "objective.vsd=jsd", "batch.micro=2", "batch.concurrent=3"})
	if err != nil {
		t.Fatal(err)
	}
	stages, opt, err := cfg.Build()
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 || stages[1].LR != 5e-5 || stages[0].Steps != 5 || opt.MicroBatch != 2 || opt.GlobalBatch != 8 || opt.Concurrent != 3 {
		t.Fatalf("stages %+v, options %+v", stages, opt)
	}
	o0, o1 := stages[0].Objective, stages[1].Objective
	if o0.WAlign != 0 || o0.WVSD != 0 || o0.WCE != 1 {
		t.Fatalf("stage 1 objective %+v", o0)
	}
	if o1.Align != BiLD || o1.VSD != JSD || o1.Tau != 2 || o1.DBiLD.Tau != 2 || o1.WAlign != 1 {
		t.Fatalf("stage 2 objective %+v", o1)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"student: s\nout: o\nlearning_rate: 1\n", "learning_rate"},
		{"student: s\nout: o\nobjective: {align: kl}\n", "unknown divergence"},
		{"student: s\nout: o\nstages: [{name: x, steps: 3, lr: 1, train: [eyes]}]\n", "unknown module"},
		{"student: s\nout: o\nbatch: {global: 3, micro: 2}\n", "multiple"},
		{"student: s\nout: o\nbatch: {concurrent: -1}\n", "batch.concurrent"},
	} {
		os.WriteFile(p, []byte(bad.yaml), 0o644)
		cfg, err := LoadRunConfig(p, nil)
		if err == nil {
			_, _, err = cfg.Build()
		}
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want one mentioning %q", bad.yaml, err, bad.want)
		}
	}
	if _, err := LoadRunConfig("", []string{"novalue"}); err == nil {
		t.Error("--set without = accepted")
	}
}
