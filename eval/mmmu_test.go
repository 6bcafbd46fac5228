package eval

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
)

// Expected values: MMMU's mmmu/utils/eval_utils.py (random.seed(42) at import) run on the same
// inputs, in the same order.
func TestMMMUParseMultiChoice(t *testing.T) {
	p := newMMMUParser()
	ch := []string{"A", "B", "C", "D"}
	i2a := map[string]string{"A": "red apple", "B": "green pear", "C": "blue sky", "D": "yellow sun"}
	cases := [][2]string{
		{"(B)", "B"}, {"B", "B"}, {"The answer is C.", "C"}, {"A and B", "B"}, {"(A) or (C)", "C"},
		{"I think the correct one is the blue sky here", "C"},
		{"nothing here", "A"}, // random.choice, 1st call
		{"blue sky and green pear are both plausible options here", "B"},
		{"b", "A"},   // random, 2nd call
		{"E", "C"},   // random, 3rd call
		{"hmm", "B"}, // random, 4th call
		{"D.", "D"}, {"Answer: (D)", "D"},
	}
	for _, c := range cases {
		if got := p.parseMultiChoice(c[0], ch, i2a); got != c[1] {
			t.Errorf("parse_multi_choice_response(%q) = %q, want %q", c[0], got, c[1])
		}
	}
}

func TestPyRandomChoiceSequence(t *testing.T) {
	// python3: random.seed(42); [random.choice('ABCD') for _ in range(20)], then 10 from 'A'..'I'
	want := "AACBBBAADAAABBABDBDC" + "ACGFECDFBB"
	r := newPyRandom(42)
	got := ""
	for i := 0; i < 20; i++ {
		got += string(rune('A' + r.below(4)))
	}
	for i := 0; i < 10; i++ {
		got += string(rune('A' + r.below(9)))
	}
	if got != want {
		t.Errorf("sequence %s, want %s", got, want)
	}
}

func normStrings(ns []mmmuNorm) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range ns {
		s := n.str
		if n.isNum {
			s = strconv.FormatFloat(n.num, 'f', -1, 64)
			if n.num == float64(int64(n.num)) {
				s = fmt.Sprintf("%.1f", n.num)
			}
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func TestMMMUParseOpen(t *testing.T) {
	cases := []struct {
		in   string
		want []string
		gold string
	}{
		{"The answer is 42.", []string{"42.0"}, "42"},
		{"so the result is 3.14159", []string{"3.14"}, "3.14"},
		{"1,000 apples", []string{"0.0", "1,000 apples", "1000.0"}, "1000"},
		{"x = 5\ny = 7", []string{"7.0"}, "7"},
		{"It is Paris.", []string{"paris"}, "paris"},
		{"1.5e3 meters", []string{"1.0", "1.5e3 meters", "1500.0", "3.0"}, "1500"},
		{"the value could be -2.5", []string{"-2.5"}, "-2.5"},
		{"A", []string{" a", "a "}, "a"},
		{"therefore the final answer is 12 cm", []string{"12 cm", "12.0"}, "12 cm"},
	}
	for _, c := range cases {
		got := parseOpen(c.in)
		if fmt.Sprint(normStrings(got)) != fmt.Sprint(c.want) {
			t.Errorf("parse_open_response(%q) = %q, want %q", c.in, normStrings(got), c.want)
		}
		if !evalOpen([]string{c.gold}, got) {
			t.Errorf("eval_open(%q, %q) = false, want true", c.gold, c.in)
		}
	}
	if evalOpen([]string{"43"}, parseOpen("The answer is 42.")) {
		t.Error("42 must not match 43")
	}
}

func TestMMMUExtractNumbers(t *testing.T) {
	got := mmmuExtractNumbers("5°C and -3.25, 1,000,000 or 2e5; x1 3.0e-2 .5")
	want := []string{"1,000,000", "2e5", "3.0e-2", "5", "-3", "000", "5", "1", "3", "-2", ".5"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("extract_numbers = %q, want %q", got, want)
	}
}

func TestScoreMMMU(t *testing.T) {
	dir := t.TempDir()
	ann := filepath.Join(dir, "anns.json")
	writeFile(t, ann, `[
 {"id": "validation_Art_Theory_1", "question_type": "multiple-choice", "answer": "B", "all_choices": ["A","B","C"], "index2ans": {"A": "oil", "B": "fresco", "C": "ink"}},
 {"id": "validation_Art_Theory_2", "question_type": "multiple-choice", "answer": "A", "all_choices": ["A","B"], "index2ans": {"A": "x", "B": "y"}},
 {"id": "validation_Math_1", "question_type": "open", "answer": "12"},
 {"id": "validation_Math_2", "question_type": "open", "answer": ["3.5", "7/2"]},
 {"id": "validation_Unknown_1", "question_type": "open", "answer": "z"}
]`)
	ans := filepath.Join(dir, "answers.jsonl")
	writeFile(t, ans, `{"question_id": "validation_Art_Theory_1", "text": "(B) fresco"}
{"question_id": "validation_Art_Theory_2", "text": "B"}
{"question_id": "validation_Math_1", "text": "The result is 12.00"}
{"question_id": "validation_Math_2", "text": "It is 4"}
{"question_id": "validation_Unknown_1", "text": "z"}
`)
	m, err := ScoreFiles("mmmu", ans, ann)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"accuracy": 50, "subject/Art_Theory": 50, "subject/Math": 50, "domain/Art and Design": 50, "domain/Science": 50, "count": 4}
	for k, w := range want {
		if v := m.Values[k]; v != w {
			t.Errorf("%s = %v, want %v", k, v, w)
		}
	}
}
