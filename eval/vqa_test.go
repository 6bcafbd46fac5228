package eval

import (
	"math"
	"path/filepath"
	"testing"
)

// Expected values below were produced by running TinyLLaVA's tinyllava/eval/m4c_evaluator.py
// (EvalAIAnswerProcessor, TextVQAAccuracyEvaluator) and eval_textvqa.py on the same inputs.

func TestNormalizeVQAAnswerMatchesEvalAI(t *testing.T) {
	cases := [][2]string{
		{"Two dogs.", "2 dogs"},
		{"It's 3,000 feet", "it 's 3000 feet"},
		{"The man's hat", "man 's hat"},
		{"dont know", "don't know"},
		{"  A  cat  ", "cat"},
		{"hello...world. 3.5", "helloworld 3.5"},
		{"x, y", "x y"},
		{"e.g. (a) b", "eg b"},
		{"yes.", "yes"},
		{"Im here", "im here"}, // "Im" is in the table with a capital, so never matches after lower()
		{"one-two", "1 2"},
		{"a/b", "b"},
		{"Unanswerable.", "unanswerable"},
		{"12,34", "1234"},
		{"........................................x", "........x"}, // only 32 periods are stripped
		{"Isnt it?", "isn't it"},
	}
	for _, c := range cases {
		if got := NormalizeVQAAnswer(c[0]); got != c[1] {
			t.Errorf("NormalizeVQAAnswer(%q) = %q, want %q", c[0], got, c[1])
		}
	}
}

func rep(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func cat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func TestVQASoftScoreCases(t *testing.T) {
	cases := []struct {
		pred string
		gt   []string
		want float64
	}{
		{"two", cat(rep("2", 4), rep("two", 2), rep("3", 4)), 1.0},
		{"2", cat(rep("2", 2), rep("1", 8)), 0.6},
		{"The dog.", rep("dog", 10), 1.0},
		{"a dog", cat(rep("dog", 3), rep("cat", 7)), 0.9},
		{"Dont", cat(rep("don't", 5), rep("dont", 5)), 1.0},
		{"yes, there is", rep("yes", 10), 0.0},
		{"Yes", cat(rep("yes", 9), rep("no", 1)), 1.0},
		{"", rep("unanswerable", 10), 0.0},
		{"Unanswerable", cat(rep("unanswerable", 6), rep("unsuitable", 4)), 1.0},
		{"1,000", cat(rep("1000", 3), rep("1,000", 2), rep("100", 5)), 1.0},
		{"It's red!", cat(rep("it's red", 1), rep("red", 9)), 0.3},
		{"nike.", cat(rep("nike", 1), rep("NIKE", 1), rep("adidas", 8)), 0.6},
		{"I can't tell.", cat(rep("cant", 4), rep("unanswerable", 6)), 0.0},
		{"none", cat(rep("0", 3), rep("none", 7)), 1.0},
		{"McDonald's", cat(rep("mcdonald's", 2), rep("mcdonalds", 8)), 0.6},
		{"(B)", rep("b", 10), 1.0},
	}
	for _, c := range cases {
		if got := VQASoftScore(c.pred, c.gt); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("VQASoftScore(%q) = %v, want %v", c.pred, got, c.want)
		}
	}
}

func TestScoreTextVQAFixture(t *testing.T) {
	m, err := ScoreFiles("textvqa", "testdata/textvqa/answers.jsonl", "testdata/textvqa/annotations.json")
	if err != nil {
		t.Fatal(err)
	}
	// eval_textvqa.py: "Samples: 24  Accuracy: 79.17%"; 100*evaluator.eval_pred_list = 79.16666666666666
	if v := m.Values["accuracy"]; v != 79.16666666666666 {
		t.Errorf("accuracy = %v, want 79.16666666666666", v)
	}
	if m.Values["count"] != 24 {
		t.Errorf("count = %v", m.Values["count"])
	}
}

func TestScoreVQAv2Fixture(t *testing.T) {
	m, err := ScoreFiles("vqav2", "testdata/vqav2/answers.jsonl", "testdata/vqav2/annotations.json")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"accuracy": 79.16666666666666, "accuracy/yes/no": 77.5, "accuracy/number": 77.49999999999999, "accuracy/other": 82.5}
	for k, w := range want {
		if v := m.Values[k]; math.Abs(v-w) > 1e-9 {
			t.Errorf("%s = %v, want %v", k, v, w)
		}
	}
}

func TestVizWizListFormat(t *testing.T) {
	dir := t.TempDir()
	ann := filepath.Join(dir, "val.json")
	writeFile(t, ann, `[
 {"image": "VizWiz_val_0.jpg", "question": "what is this?", "answer_type": "unanswerable",
  "answers": [{"answer": "unanswerable"},{"answer": "unanswerable"},{"answer": "unanswerable"},{"answer": "unsuitable image"},{"answer": "unanswerable"},{"answer": "unanswerable"},{"answer": "unanswerable"},{"answer": "unanswerable"},{"answer": "unanswerable"},{"answer": "unanswerable"}]},
 {"image": "VizWiz_val_1.jpg", "question": "what color?", "answer_type": "other",
  "answers": [{"answer": "blue"},{"answer": "blue"},{"answer": "navy"},{"answer": "navy blue"},{"answer": "dark blue"},{"answer": "blue"},{"answer": "navy"},{"answer": "blue"},{"answer": "navy"},{"answer": "blue"}]}
]`)
	ans := filepath.Join(dir, "answers.jsonl")
	writeFile(t, ans, `{"question_id": 0, "prompt": "p", "text": "Unanswerable"}
{"question_id": 1, "prompt": "p", "text": "Navy."}
`)
	m, err := ScoreFiles("vizwiz", ans, ann)
	if err != nil {
		t.Fatal(err)
	}
	// q0: 9 matches -> 1.0; q1: "navy" 3 matches: leave-one-out gives 7 x 1.0 and 3 x 2/3 -> 0.9
	want := 100 * ((1.0 + (7*1.0+3*(2.0/3))/10) / 2)
	if v := m.Values["accuracy"]; math.Abs(v-want) > 1e-9 {
		t.Errorf("accuracy = %v, want %v", v, want)
	}
	if v := m.Values["accuracy/unanswerable"]; v != 100 {
		t.Errorf("accuracy/unanswerable = %v", v)
	}
}
