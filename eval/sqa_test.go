package eval

import (
	"path/filepath"
	"testing"
)

func TestSQAParse(t *testing.T) {
	cases := map[string]string{
		"A": "A", "E": "E", "B.": "FAILED", "B. b": "B", "The answer is D.": "D",
		"The answer is A": "FAILED", // the pattern needs one more character after the letter
		"(B)":             "FAILED", "b": "FAILED", "AB": "FAILED", "": "FAILED",
		"The answer is B. The answer is B.": "FAILED", // findall must give exactly one match
		"So The answer is C!":               "C",
		"F":                                 "FAILED",
	}
	for in, want := range cases {
		if got := SQAParse(in); got != want {
			t.Errorf("SQAParse(%q) = %q, want %q", in, got, want)
		}
	}
}

// Expected numbers: LLaVA's / TinyLLaVA's eval_science_qa.py on testdata/sqa prints
// "Total: 14, Correct: 6, Accuracy: 42.86%, IMG-Accuracy: 36.36%" (acc 42.857142857142854).
func TestScoreSQAFixture(t *testing.T) {
	m, err := ScoreFiles("sqa", "testdata/sqa/answers.jsonl", "testdata/sqa")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"accuracy": 42.857142857142854, "img_accuracy": 4.0 / 11 * 100,
		"correct": 6, "count": 14, "img_correct": 4, "img_count": 11,
	}
	for k, w := range want {
		if v := m.Values[k]; v != w {
			t.Errorf("%s = %v, want %v", k, v, w)
		}
	}
	if m.Keys[0] != "img_accuracy" {
		t.Errorf("headline key first: %v", m.Keys)
	}
}

func TestSQAPromptLayout(t *testing.T) {
	img := "image.png"
	p := &SQAProblem{Question: "Which is a mammal?", Choices: []string{"frog", "cat"}, Hint: "Look.", Image: &img}
	want := "Context: Look.\nWhich is a mammal?\nA. frog\nB. cat\nAnswer with the option's letter from the given choices directly."
	if got := SQAPrompt(p); got != want {
		t.Errorf("SQAPrompt = %q, want %q", got, want)
	}
	p.Hint = ""
	if got := SQAPrompt(p); got != want[len("Context: Look.\n"):] {
		t.Errorf("SQAPrompt without hint = %q", got)
	}
}

func TestSQABadProblems(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "problems.json"), "{\n  \"1\": {\"question\": \"q\",\n  \"choices\": [\"a\"], \"answer\": 0,\n  }\n}")
	writeFile(t, filepath.Join(dir, "pid_splits.json"), `{"test": ["1"]}`)
	_, err := LoadSQARefs(dir, "test")
	if err == nil || !containsSub(err.Error(), "problems.json:4") {
		t.Fatalf("want an error naming problems.json:4, got %v", err)
	}
}
