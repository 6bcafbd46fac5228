package eval

import (
	"path/filepath"
	"testing"
)

func TestMMEParse(t *testing.T) {
	cases := map[string]string{
		"Yes": "yes", "no": "no", "YES": "yes", "Yes, there is a bus.": "yes",
		"There is no cow.": "other", // only the first four characters are looked at
		"Not at all":       "no",    // "not " contains "no"
		"Nope":             "no", "Y": "other", "N": "other", "": "other",
		"I don't know": "other", "yes\n": "yes", " yes": "yes", "  yes": "other",
		"nyes": "yes", // "yes" is checked before "no"
	}
	for in, want := range cases {
		if got := MMEParse(in); got != want {
			t.Errorf("MMEParse(%q) = %q, want %q", in, got, want)
		}
	}
}

// Expected numbers: LLaVA's convert_answer_to_mme.py and MME's eval_tool/calculation.py on
// testdata/mme: existence 150.0 (acc 83.33333333333334, acc+ 66.66666666666666), count 125.0,
// perception 275.0, code_reasoning 200.0, cognition 200.0.
func TestScoreMMEFixture(t *testing.T) {
	want := map[string]float64{
		"perception": 275, "perception/20": 13.75, "cognition": 200,
		"existence/score": 150, "existence/acc": 83.33333333333334, "existence/acc_plus": 66.66666666666666,
		"count/score": 125, "count/acc": 75, "count/acc_plus": 50,
		"code_reasoning/score": 200,
	}
	for _, mode := range []struct{ answers, gt string }{
		{"testdata/mme/answers.jsonl", "testdata/mme/MME"},
		{"testdata/mme/results", ""}, // calculation.py's input directory
	} {
		m, err := ScoreFiles("mme", mode.answers, mode.gt)
		if err != nil {
			t.Fatalf("%s: %v", mode.answers, err)
		}
		for k, w := range want {
			if v := m.Values[k]; v != w {
				t.Errorf("%s: %s = %v, want %v", mode.answers, k, v, w)
			}
		}
		if m.Keys[0] != "perception" {
			t.Errorf("keys %v", m.Keys)
		}
	}
}

func TestMMEErrors(t *testing.T) {
	dir := t.TempDir()
	// odd number of questions in a subtask
	writeFile(t, filepath.Join(dir, "color.txt"), "a.jpg\tIs it red? Please answer yes or no.\tYes\tYes\n")
	if _, err := ScoreFiles("mme", dir, ""); err == nil || !containsSub(err.Error(), "color.txt:1") {
		t.Errorf("want error naming color.txt:1, got %v", err)
	}
	writeFile(t, filepath.Join(dir, "color.txt"), "a.jpg\tq\tYes\tYes\na.jpg\tq2\tmaybe\tYes\n")
	if _, err := ScoreFiles("mme", dir, ""); err == nil || !containsSub(err.Error(), "color.txt:2") {
		t.Errorf("want error naming color.txt:2, got %v", err)
	}
	ans := filepath.Join(dir, "a.jsonl")
	writeFile(t, ans, `{"question_id": "existence/000000006040.jpg", "prompt": "Is there a cat?", "text": "no"}`+"\n")
	if _, err := ScoreFiles("mme", ans, "testdata/mme/MME"); err == nil || !containsSub(err.Error(), "a.jsonl:1") {
		t.Errorf("want error naming a.jsonl:1, got %v", err)
	}
}
