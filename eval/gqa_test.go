package eval

import (
	"path/filepath"
	"testing"
)

func TestGQAPrediction(t *testing.T) {
	cases := map[string]string{"Yes": "yes", "red.": "red", "wood..": "wood", "The table": "the table", "3.5": "3.5", "a.b": "a.b"}
	for in, want := range cases {
		if got := GQAPrediction(in); got != want {
			t.Errorf("GQAPrediction(%q) = %q, want %q", in, got, want)
		}
	}
}

// Expected numbers: LLaVA's scripts/convert_gqa_for_eval.py followed by the scoring loop of GQA's
// eval.py on testdata/gqa: accuracy 70.0, binary 75.0, open 66.66666666666666.
func TestScoreGQAFixture(t *testing.T) {
	m, err := ScoreFiles("gqa", "testdata/gqa/answers.jsonl", "testdata/gqa")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"accuracy": 70.0, "binary": 75.0, "open": 66.66666666666666, "count": 10}
	for k, w := range want {
		if v := m.Values[k]; v != w {
			t.Errorf("%s = %v, want %v", k, v, w)
		}
	}
}

func TestGQAMissingAnswer(t *testing.T) {
	dir := t.TempDir()
	ans := filepath.Join(dir, "a.jsonl")
	writeFile(t, ans, `{"question_id": "20000000", "text": "yes"}`+"\n")
	if _, err := ScoreFiles("gqa", ans, "testdata/gqa/testdev_balanced_questions.json"); err == nil || !containsSub(err.Error(), "20000001") {
		t.Fatalf("want an error naming the unanswered question, got %v", err)
	}
}
