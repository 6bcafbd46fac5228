package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/engine"
	"github.com/switchkd/switchkd/models/tinyllava"
)

// makeStudent writes a smaller random student (LLM hidden 24, 1 layer) that shares tiny-a's
// vision tower (copied, as in the paper) and tokenizer.
func makeStudent(t *testing.T, teacherDir string) string {
	t.Helper()
	b := engine.MustBackend("")
	teacher, err := tinyllava.Load(teacherDir, b)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(teacherDir, "config.json"))
	var m map[string]any
	json.Unmarshal(raw, &m)
	tc := m["text_config"].(map[string]any)
	tc["hidden_size"], tc["num_hidden_layers"], tc["intermediate_size"] = 24, 1, 40
	tc["num_attention_heads"], tc["num_key_value_heads"] = 4, 2
	raw, _ = json.Marshal(m)
	cfg, err := tinyllava.ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	p := tinyllava.RandomParams(cfg, 0.1, 7)
	for n, x := range teacher.Params.T {
		if strings.HasPrefix(n, tinyllava.VisionPrefix) {
			p[n] = tensors.FromFlatDataAndDimensions(tensors.MustCopyFlatData[float32](x), x.Shape().Dimensions...)
		}
	}
	s, err := tinyllava.New(cfg, p, b)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "student")
	if err := s.Save(dir, "F32", teacherDir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDistillCommandTrainsAndResumes(t *testing.T) {
	teacher := filepath.Join("..", "..", "testdata", "models", "tiny-a")
	student := makeStudent(t, teacher)
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"distill", "--teacher", teacher, "--student", student, "--data", filepath.Join(teacher, "data.json"),
		"--images", filepath.Join(teacher, "images"), "--out", out, "--steps", "12", "--save-every", "4",
		"--set", "stages.0.lr=3e-3", "--set", "batch.global=4", "--set", "batch.micro=2", "--set", "logging.progress=false"}
	var o, e bytes.Buffer
	if code := run(args, &o, &e); code != 0 {
		t.Fatalf("distill exit %d: %s", code, e.String())
	}
	lines := readLines(t, filepath.Join(out, "metrics.jsonl"))
	if len(lines) != 12 {
		t.Fatalf("%d metrics lines, want 12", len(lines))
	}
	var first, last map[string]float64
	json.Unmarshal([]byte(lines[0]), &first)
	json.Unmarshal([]byte(lines[11]), &last)
	for _, k := range []string{"step", "total", "ce", "align", "vsd", "lr"} {
		if _, ok := first[k]; !ok {
			t.Fatalf("metrics line lacks %q: %s", k, lines[0])
		}
	}
	if !(last["total"] < first["total"]) {
		t.Fatalf("total loss did not fall: %v -> %v", first["total"], last["total"])
	}
	if st, err := os.Stat(filepath.Join(out, "loss_curves.png")); err != nil || st.Size() == 0 {
		t.Fatalf("loss_curves.png: %v", err)
	}
	// The saved student loads in nll and generate.
	o.Reset()
	if code := run([]string{"nll", "--model", filepath.Join(out, "student"), "--data", filepath.Join(teacher, "data.json"), "--images", filepath.Join(teacher, "images")}, &o, &e); code != 0 {
		t.Fatalf("nll on the student: exit %d: %s", code, e.String())
	}
	o.Reset()
	if code := run([]string{"generate", "--model", filepath.Join(out, "student"), "--prompt", "Name a color.", "--max-new-tokens", "4"}, &o, &e); code != 0 {
		t.Fatalf("generate on the student: exit %d: %s", code, e.String())
	}
	// Running again into the same folder without --resume is refused; with --resume after the
	// end it has nothing left to do and the curve is unchanged.
	if code := run(args, &o, &e); code != 1 {
		t.Fatalf("rerun without --resume: exit %d, want 1", code)
	}
	// losses: one line per sample with every field.
	o.Reset()
	if code := run([]string{"losses", "--teacher", teacher, "--student", student, "--data", filepath.Join(teacher, "data.json"), "--images", filepath.Join(teacher, "images")}, &o, &e); code != 0 {
		t.Fatalf("losses exit %d: %s", code, e.String())
	}
	ls := strings.Split(strings.TrimSpace(o.String()), "\n")
	if len(ls) != 6 {
		t.Fatalf("losses printed %d lines, want 6", len(ls))
	}
	var row map[string]any
	json.Unmarshal([]byte(ls[0]), &row)
	for _, k := range []string{"id", "tokens", "ce", "align", "vsd", "total"} {
		if _, ok := row[k]; !ok {
			t.Fatalf("losses line lacks %q: %s", k, ls[0])
		}
	}
	// Unknown config keys are errors.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("student: x\nlearning_rate: 3\n"), 0o644)
	if code := run([]string{"distill", "--config", bad, "--data", "d", "--out", "o"}, &o, &e); code != 1 || !strings.Contains(e.String(), "learning_rate") {
		t.Fatalf("unknown key: exit %d, stderr %q", code, e.String())
	}
}

func readLines(t *testing.T, path string) []string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
