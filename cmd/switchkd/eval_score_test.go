package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScoreAnswersFileGQA(t *testing.T) {
	dir := t.TempDir()
	q := filepath.Join(dir, "questions.json")
	os.WriteFile(q, []byte(`{"1": {"answer": "yes", "isBalanced": true, "types": {"structural": "verify"}},
 "2": {"answer": "red", "isBalanced": true, "types": {"structural": "query"}},
 "3": {"answer": "left", "isBalanced": true, "types": {"structural": "query"}},
 "4": {"answer": "cat", "isBalanced": false, "types": {"structural": "query"}}}`), 0o644)
	a := filepath.Join(dir, "answers.jsonl")
	os.WriteFile(a, []byte(`{"question_id": "1", "prompt": "p", "text": "Yes."}
{"question_id": "2", "prompt": "p", "text": "Red"}
{"question_id": "3", "prompt": "p", "text": "right"}
`), 0o644)
	out := filepath.Join(dir, "out")
	var buf bytes.Buffer
	if err := scoreAnswersFile("gqa", a, q, out, &buf); err != nil {
		t.Fatal(err)
	}
	table := buf.String()
	for _, want := range []string{"| gqa metric | value |", "| accuracy | 66.67 |", "| binary | 100.00 |", "| open | 50.00 |", "| count | 3 |"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	data, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Task    string             `json:"task"`
		Metrics map[string]float64 `json:"metrics"`
		Order   []string           `json:"metric_order"`
		Answers string             `json:"answers_file"`
		Time    string             `json:"time"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	if res.Task != "gqa" || math.Abs(res.Metrics["accuracy"]-200.0/3) > 1e-9 || res.Order[0] != "accuracy" || res.Answers != a || res.Time == "" {
		t.Errorf("results.json = %s", data)
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 1 {
		t.Errorf("temporary files left in %s: %v", out, entries)
	}
}

func TestScoreAnswersFileErrors(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "answers.jsonl")
	os.WriteFile(a, []byte("{\"question_id\": 1, \"text\": \"yes\"}\n{broken\n"), 0o644)
	var buf bytes.Buffer
	err := scoreAnswersFile("gqa", a, filepath.Join(dir, "q.json"), "", &buf)
	if err == nil || !strings.Contains(err.Error(), "answers.jsonl:2") {
		t.Errorf("want error naming answers.jsonl:2, got %v", err)
	}
	if err := scoreAnswersFile("nosuch", a, "", "", &buf); err == nil || !strings.Contains(err.Error(), "unknown eval task") {
		t.Errorf("unknown task: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "results.json")); err == nil {
		t.Error("results.json written on error")
	}
}
