package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/switchkd/switchkd/world"
)

const tinyModel = "../../testdata/models/tiny-a"

// answerLines reads an answers file as raw JSON objects.
func answerLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for i, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%s:%d: %v", path, i+1, err)
		}
		out = append(out, m)
	}
	return out
}

func readResults(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func runCLI(t *testing.T, want int, args ...string) (string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != want {
		t.Fatalf("switchkd %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// TestEvalWorldResume runs the eval command on a small generated world with the tiny random model:
// a --limit run, then a full rerun that must only add the missing answers, then scoring the
// answers file without a model.
func TestEvalWorldResume(t *testing.T) {
	dir := t.TempDir()
	cfg := world.QuickConfig()
	cfg.NumTrain, cfg.NumVal, cfg.NumTest, cfg.QuestionsPerImage = 1, 0, 3, 3
	m, err := world.Generate(cfg, filepath.Join(dir, "world"))
	if err != nil {
		t.Fatal(err)
	}
	samples := m.Samples(world.SplitTest)
	test := filepath.Join(dir, "world", "test.json")
	out := filepath.Join(dir, "out")

	runCLI(t, 0, "eval", "--model", tinyModel, "--task", "world", "--questions", test, "--out", out, "--limit", "2", "--batch-size", "2")
	answers := filepath.Join(out, "answers.jsonl")
	first := answerLines(t, answers)
	if len(first) != 2 {
		t.Fatalf("--limit 2 wrote %d answers", len(first))
	}
	for i, a := range first {
		if a["question_id"] != samples[i].ID {
			t.Errorf("answer %d is for %v, want %s", i, a["question_id"], samples[i].ID)
		}
		if a["prompt"] != "<image>\n"+samples[i].Question() {
			t.Errorf("answer %d prompt %q", i, a["prompt"])
		}
		for _, k := range []string{"text", "answer_id", "model_id", "metadata"} {
			if _, ok := a[k]; !ok {
				t.Errorf("answer %d lacks %q: %v", i, k, a)
			}
		}
		if a["model_id"] != "tiny-a" {
			t.Errorf("model_id %v", a["model_id"])
		}
	}
	if r := readResults(t, filepath.Join(out, "results.json")); r["answered"] != 2.0 || r["generated"] != 2.0 || r["scored"] != true {
		t.Errorf("results.json after --limit 2: %v", r)
	}

	stdout, stderr := runCLI(t, 0, "eval", "--model", tinyModel, "--task", "synthetic", "--questions", test, "--out", out, "--batch-size", "3")
	if !strings.Contains(stderr, "2 already answered") {
		t.Errorf("rerun did not report the answered questions:\n%s", stderr)
	}
	all := answerLines(t, answers)
	if len(all) != len(samples) {
		t.Fatalf("after the rerun %d answers for %d samples", len(all), len(samples))
	}
	seen := map[any]bool{}
	for i, a := range all {
		if seen[a["question_id"]] {
			t.Errorf("duplicate answer for %v", a["question_id"])
		}
		seen[a["question_id"]] = true
		if a["question_id"] != samples[i].ID {
			t.Errorf("answer %d is for %v, want %s (question order)", i, a["question_id"], samples[i].ID)
		}
	}
	if !reflect.DeepEqual(all[:2], first) {
		t.Errorf("the rerun changed the first answers")
	}
	res := readResults(t, filepath.Join(out, "results.json"))
	if res["task"] != "world" || res["answered"] != float64(len(samples)) || res["generated"] != float64(len(samples)-2) || res["model_id"] != "tiny-a" {
		t.Errorf("results.json: %v", res)
	}
	metrics, _ := res["metrics"].(map[string]any)
	if metrics["count"] != float64(len(samples)) {
		t.Errorf("metrics: %v", metrics)
	}
	for _, k := range []string{"average", "accuracy", "exist/f1"} {
		if _, ok := metrics[k]; !ok && strings.Contains(string(mustRead(t, test)), `"exist"`) {
			t.Errorf("metrics lack %s: %v", k, metrics)
		}
	}
	if !strings.Contains(stdout, "| world metric | value |") {
		t.Errorf("no Markdown table:\n%s", stdout)
	}

	// A third run has nothing to do and gives the same table.
	again, _ := runCLI(t, 0, "eval", "--model", tinyModel, "--task", "world", "--questions", test, "--out", out)
	if again != stdout {
		t.Errorf("third run table differs:\n%s\nvs\n%s", again, stdout)
	}
	// A rerun with a smaller --limit accepts the answers beyond it and generates nothing.
	_, stderr = runCLI(t, 0, "eval", "--model", tinyModel, "--task", "world", "--questions", test, "--out", out, "--limit", "1")
	if !strings.Contains(stderr, "1 questions, 1 already answered") || len(answerLines(t, answers)) != len(samples) {
		t.Errorf("--limit 1 rerun:\n%s", stderr)
	}
	// Scoring without a model gives the same metrics.
	scoreOut := filepath.Join(dir, "score")
	table, _ := runCLI(t, 0, "eval", "--task", "world", "--answers", answers, "--annotations", test, "--out", scoreOut)
	if table != stdout {
		t.Errorf("scoring the answers file gives\n%s\nbut the run printed\n%s", table, stdout)
	}
	sres := readResults(t, filepath.Join(scoreOut, "results.json"))
	if !reflect.DeepEqual(sres["metrics"], res["metrics"]) {
		t.Errorf("metrics differ: %v vs %v", sres["metrics"], res["metrics"])
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeSQA writes a three-problem ScienceQA test split (two with images) and its LLaVA question file.
func writeSQA(t *testing.T, dir string) (questions, problems string) {
	t.Helper()
	problems = filepath.Join(dir, "sqa")
	os.MkdirAll(problems, 0o755)
	os.WriteFile(filepath.Join(problems, "problems.json"), []byte(`{
 "p1": {"question": "Which colour?", "choices": ["red", "blue"], "answer": 0, "hint": "", "image": "image.png"},
 "p2": {"question": "Which shape?", "choices": ["round", "square", "flat"], "answer": 2, "hint": "Look.", "image": "image.png"},
 "p3": {"question": "Which is a mammal?", "choices": ["cat", "trout"], "answer": 0, "hint": "", "image": null}}`), 0o644)
	os.WriteFile(filepath.Join(problems, "pid_splits.json"), []byte(`{"test": ["p1", "p2", "p3"]}`), 0o644)
	questions = filepath.Join(dir, "llava_test_CQM-A.json")
	os.WriteFile(questions, []byte(`[
 {"id": "p1", "image": "rgba.png", "conversations": [{"from": "human", "value": "<image>\nWhich colour?\nA. red\nB. blue"}, {"from": "gpt", "value": "A"}]},
 {"id": "p2", "image": "photo.jpg", "conversations": [{"from": "human", "value": "Context: Look.\nWhich shape?\nA. round\nB. square\nC. flat\n<image>"}, {"from": "gpt", "value": "C"}]},
 {"id": "p3", "conversations": [{"from": "human", "value": "Which is a mammal?\nA. cat\nB. trout"}, {"from": "gpt", "value": "A"}]}
]`), 0o644)
	return questions, problems
}

// TestEvalSQA checks a benchmark run end to end: LLaVA's ScienceQA question file, prompts with
// "<image>" exactly for the image questions, scoring against problems.json, the same metrics
// when the answers file is scored alone.
func TestEvalSQA(t *testing.T) {
	dir := t.TempDir()
	questions, problems := writeSQA(t, dir)
	out := filepath.Join(dir, "out")
	stdout, _ := runCLI(t, 0, "eval", "--model", tinyModel, "--task", "scienceqa", "--questions", questions,
		"--images", tinyModel+"/images", "--annotations", problems, "--out", out, "--max-new-tokens", "4", "--batch-size", "2")
	lines := answerLines(t, filepath.Join(out, "answers.jsonl"))
	if len(lines) != 3 {
		t.Fatalf("%d answers", len(lines))
	}
	wantPrompts := []string{
		"<image>\nWhich colour?\nA. red\nB. blue\nAnswer with the option's letter from the given choices directly.",
		"<image>\nContext: Look.\nWhich shape?\nA. round\nB. square\nC. flat\nAnswer with the option's letter from the given choices directly.",
		"Which is a mammal?\nA. cat\nB. trout\nAnswer with the option's letter from the given choices directly.",
	}
	for i, l := range lines {
		if l["prompt"] != wantPrompts[i] {
			t.Errorf("prompt %d = %q, want %q", i, l["prompt"], wantPrompts[i])
		}
	}
	res := readResults(t, filepath.Join(out, "results.json"))
	metrics, _ := res["metrics"].(map[string]any)
	if metrics["img_count"] != 2.0 || metrics["count"] != 3.0 {
		t.Errorf("metrics %v", metrics)
	}
	settings, _ := res["settings"].(map[string]any)
	if settings["batch_size"] != 2.0 || settings["max_new_tokens"] != 4.0 || settings["decoding"] != "greedy" {
		t.Errorf("settings %v", settings)
	}
	for _, k := range []string{"elapsed_seconds", "generation_seconds", "model", "time"} {
		if _, ok := res[k]; !ok {
			t.Errorf("results.json lacks %s", k)
		}
	}
	table, _ := runCLI(t, 0, "eval", "--task", "sqa", "--answers", filepath.Join(out, "answers.jsonl"), "--annotations", problems)
	if table != stdout {
		t.Errorf("scoring alone:\n%s\nrun:\n%s", table, stdout)
	}

	// Without annotations a task that needs them is generated but not scored.
	out2 := filepath.Join(dir, "out2")
	stdout, stderr := runCLI(t, 0, "eval", "--model", tinyModel, "--task", "sqa", "--questions", questions,
		"--images", tinyModel+"/images", "--out", out2, "--max-new-tokens", "2", "--limit", "1")
	if stdout != "" || !strings.Contains(stderr, "not scored") {
		t.Errorf("unscored run: stdout %q stderr %q", stdout, stderr)
	}
	if r := readResults(t, filepath.Join(out2, "results.json")); r["scored"] != false || r["metrics"] != nil {
		t.Errorf("unscored results.json: %v", r)
	}
}

func TestEvalErrors(t *testing.T) {
	dir := t.TempDir()
	questions, _ := writeSQA(t, dir)
	imgs := tinyModel + "/images"
	out := filepath.Join(dir, "out")
	usage := [][]string{
		{"eval"},
		{"eval", "--model", tinyModel, "--questions", questions, "--images", imgs, "--out", out},    // no task
		{"eval", "--task", "nosuch", "--answers", "a.jsonl", "--annotations", "x"},                  // unknown task
		{"eval", "--task", "sqa", "--model", tinyModel, "--questions", questions, "--images", imgs}, // no --out
		{"eval", "--task", "sqa", "--model", tinyModel, "--questions", questions, "--out", out},     // no --images
		{"eval", "--task", "gqa", "--answers", "a.jsonl", "--model", tinyModel},                     // contradictory
		{"eval", "--task", "gqa", "--answers", "a.jsonl"},                                           // no annotations
		{"eval", "--task", "sqa", "--model", tinyModel, "--questions", questions, "--images", imgs, "--out", out, "--batch-size", "0"},
		{"eval", "--task", "sqa", "--model", tinyModel, "--questions", questions, "--images", imgs, "--out", out, "--all-rounds"},
		{"eval", "--task", "sqa", "--bench", "1,x", "--model", tinyModel, "--questions", questions, "--images", imgs},
		{"eval", "--task", "sqa", "--bench", "1", "--out", out, "--model", tinyModel, "--questions", questions, "--images", imgs},
		{"eval", "--task", "mmbench", "--model", tinyModel, "--questions", "x.tsv", "--images", imgs, "--out", out},
		{"eval", "--task", "sqa", "extra"},
	}
	for _, args := range usage {
		_, stderr := runCLI(t, 2, args...)
		if !strings.Contains(stderr, "usage: switchkd eval") {
			t.Errorf("%v: no usage text:\n%s", args, stderr)
		}
	}

	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"question_id\": 1, \"image\": \"rgba.png\", \"text\": \"What?\"}\n\n{\"image\": \"gray.png\", \"text\": \"Q\"}\n"), 0o644)
	_, stderr := runCLI(t, 1, "eval", "--task", "gqa", "--model", tinyModel, "--questions", bad, "--images", imgs, "--out", out)
	if !strings.Contains(stderr, "bad.jsonl:3") || !strings.Contains(stderr, "question_id") {
		t.Errorf("malformed line error: %s", stderr)
	}
	os.WriteFile(bad, []byte("{\"question_id\": 1, \"image\": \"rgba.png\", \"text\": \"What?\"}\n{\"question_id\": 7, \"image\": \"nosuch.png\", \"text\": \"Q\"}\n"), 0o644)
	_, stderr = runCLI(t, 1, "eval", "--task", "gqa", "--model", tinyModel, "--questions", bad, "--images", imgs, "--out", out)
	if !strings.Contains(stderr, "question 7") || !strings.Contains(stderr, "nosuch.png") {
		t.Errorf("missing image error: %s", stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "answers.jsonl")); err == nil {
		if b, _ := os.ReadFile(filepath.Join(out, "answers.jsonl")); len(b) > 0 {
			t.Errorf("answers written before the missing image was found")
		}
	}
	// Answers of another question file in the output folder are refused.
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "answers.jsonl"), []byte(`{"question_id": 99, "prompt": "x", "text": "y"}`+"\n"), 0o644)
	_, stderr = runCLI(t, 1, "eval", "--task", "gqa", "--model", tinyModel, "--questions", bad, "--images", imgs, "--out", out)
	if !strings.Contains(stderr, "question_id 99 is not in the question file") {
		t.Errorf("foreign answers: %s", stderr)
	}
}

// TestEvalBench checks that --bench runs every batch size and prints the comparison.
func TestEvalBench(t *testing.T) {
	dir := t.TempDir()
	questions, _ := writeSQA(t, dir)
	stdout, _ := runCLI(t, 0, "eval", "--bench", "1,2", "--model", tinyModel, "--task", "sqa", "--questions", questions,
		"--images", tinyModel+"/images", "--max-new-tokens", "3")
	for _, want := range []string{"| 1 | 1 | 3 |", "| 2 | 1 | 3 |", "batch 2: median", "answers equal to batch 1's"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("bench output lacks %q:\n%s", want, stdout)
		}
	}
}
