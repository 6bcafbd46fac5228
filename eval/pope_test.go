package eval

import (
	"math"
	"path/filepath"
	"testing"
)

func TestPOPEYes(t *testing.T) {
	cases := map[string]bool{
		"Yes": true, "No": false, "no": false, "NO": true, // only "No", "no", "not" count
		"Yes, there is a dog.":          true,
		"There is no dog in the image.": false,
		"Yes,no":                        true, // commas are deleted: "Yesno" is one word
		"Yes, no.":                      false,
		"not sure":                      false,
		"I think so. No way":            true, // only the first sentence counts
		"":                              true,
		"Nope":                          true,
		"No\nthere isn't":               true, // "No\nthere" is one space-separated word
		"The answer is no":              false,
	}
	for in, want := range cases {
		if got := POPEYes(in); got != want {
			t.Errorf("POPEYes(%q) = %v, want %v", in, got, want)
		}
	}
}

func approxEq(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }

// Expected numbers: TinyLLaVA's tinyllava/eval/eval_pope.py run on testdata/pope.
func TestScorePOPEFixture(t *testing.T) {
	m, err := ScoreFiles("pope", "testdata/pope/answers.jsonl", "testdata/pope/coco")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"adversarial/tp": 3, "adversarial/fp": 2, "adversarial/tn": 4, "adversarial/fn": 1,
		"adversarial/accuracy":  100 * 0.7,
		"adversarial/precision": 100 * 0.599999880000024,
		"adversarial/recall":    100 * 0.7499998125000469,
		"adversarial/f1":        100 * 0.666666024691754,
		"adversarial/yes_ratio": 100 * 0.5,
		"random/tp":             6, "random/fp": 4, "random/tn": 4, "random/fn": 2,
		"random/accuracy":  100 * 0.625,
		"random/precision": 100 * 0.599999940000006,
		"random/recall":    100 * 0.7499999062500118,
		"random/f1":        100 * 0.6666660987658048,
		"random/yes_ratio": 100 * 0.625,
		"f1":               100 * (0.666666024691754 + 0.6666660987658048) / 2,
		"accuracy":         100 * (0.7 + 0.625) / 2,
	}
	for k, w := range want {
		v, ok := m.Values[k]
		if !ok || !approxEq(v, w) {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, w)
		}
	}
}

func TestPOPECombinedLabelFile(t *testing.T) {
	dir := t.TempDir()
	lab := filepath.Join(dir, "labels.jsonl")
	writeFile(t, lab, `{"question_id": 1, "label": "yes", "category": "popular"}
{"question_id": 2, "label": "no", "category": "popular"}
{"question_id": 3, "label": "yes", "category": "popular"}
`)
	ans := filepath.Join(dir, "answers.jsonl")
	// by-id matching: answer order does not matter here
	writeFile(t, ans, `{"question_id": 3, "text": "There is not."}
{"question_id": 1, "text": "Yes"}
{"question_id": 2, "text": "No"}
`)
	m, err := ScoreFiles("pope", ans, lab)
	if err != nil {
		t.Fatal(err)
	}
	// TP 1, TN 1, FN 1
	if m.Values["popular/tp"] != 1 || m.Values["popular/tn"] != 1 || m.Values["popular/fn"] != 1 || m.Values["popular/fp"] != 0 {
		t.Errorf("confusion = %v", m.Values)
	}
	if !approxEq(m.Values["popular/accuracy"], 100*2.0/3) {
		t.Errorf("accuracy = %v", m.Values["popular/accuracy"])
	}
}

func TestPOPEUnknownQuestion(t *testing.T) {
	dir := t.TempDir()
	ans := filepath.Join(dir, "answers.jsonl")
	writeFile(t, ans, `{"question_id": 999, "text": "Yes"}`+"\n")
	_, err := ScoreFiles("pope", ans, "testdata/pope/coco")
	if err == nil || !containsSub(err.Error(), "answers.jsonl:1") {
		t.Fatalf("want an error naming answers.jsonl:1, got %v", err)
	}
}
