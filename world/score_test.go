package world

import (
	"math"
	"testing"
)

func TestNormalize(t *testing.T) {
	cases := map[string]string{
		"Red.":              "red",
		"  BLUE square!  ":  "blue square",
		"the blue square":   "blue square",
		"Two":               "2",
		"three.":            "3",
		"none":              "0",
		"A":                 "a",
		"a":                 "a",
		"(K)":               "k",
		"Yes,":              "yes",
		"a large   circle.": "large circle",
		"":                  "",
	}
	for in, want := range cases {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseYesNo(t *testing.T) {
	cases := map[string]string{
		"Yes":                                "yes",
		"yes.":                               "yes",
		"No":                                 "no",
		"no, there is not.":                  "no",
		"NO!":                                "no",
		"There is not a red circle.":         "no",
		"Yes. There is no blue square.":      "yes", // only the first sentence counts
		"Nothing like that":                  "yes", // "nothing" is not "no"
		"":                                   "yes", // POPE's default
		"I do not see one, it is not there.": "no",
	}
	for in, want := range cases {
		if got := ParseYesNo(in); got != want {
			t.Errorf("ParseYesNo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseLetter(t *testing.T) {
	cases := map[string]string{
		"A":                     "A",
		"b":                     "B",
		"C.":                    "C",
		"(D)":                   "D",
		" B ":                   "B",
		"A. red":                "A",
		"(C) blue":              "C",
		"The answer is B.":      "B",
		"Answer: (D)":           "D",
		"I think it is C":       "C",
		"A or B":                "",
		"E":                     "",
		"red":                   "",
		"":                      "",
		"The correct option: D": "D",
	}
	for in, want := range cases {
		if got := ParseLetter(in); got != want {
			t.Errorf("ParseLetter(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCorrect(t *testing.T) {
	cases := []struct {
		qa   QA
		pred string
		want bool
	}{
		{QA{Type: TypeExist, PopeSplit: PopeRandom, Answer: "Yes"}, "Yes, there is.", true},
		{QA{Type: TypeExist, Answer: "Yes"}, "No.", false},
		{QA{Type: TypeExist, Answer: "No"}, "There is no red circle.", true},
		{QA{Type: TypeExist, Answer: "No"}, "yes", false},
		{QA{Type: TypeSpatial, Answer: "No"}, "no", true},
		{QA{Type: TypeSpatial, Answer: "blue square"}, "The blue square.", true},
		{QA{Type: TypeSpatial, Answer: "blue square"}, "blue", false},
		{QA{Type: TypeCount, Answer: "2"}, "two", true},
		{QA{Type: TypeCount, Answer: "2"}, "2.", true},
		{QA{Type: TypeCount, Answer: "2"}, "3", false},
		{QA{Type: TypeCount, Answer: "0"}, "zero", true},
		{QA{Type: TypeAttribute, Answer: "red"}, "Red", true},
		{QA{Type: TypeAttribute, Answer: "red"}, "red circle", false},
		{QA{Type: TypeAttribute, Answer: "large"}, "Large.", true},
		{QA{Type: TypeMC, Answer: "C"}, "C", true},
		{QA{Type: TypeMC, Answer: "C"}, "(C)", true},
		{QA{Type: TypeMC, Answer: "C"}, "The answer is C.", true},
		{QA{Type: TypeMC, Answer: "C"}, "B", false},
		{QA{Type: TypeMC, Answer: "A"}, "", false},
		{QA{Type: TypeMC, Answer: "A"}, "no", false}, // not read as yes/no
		{QA{Type: TypeOCR, Answer: "K"}, "k", true},
		{QA{Type: TypeOCR, Answer: "A"}, "A.", true},
		{QA{Type: TypeOCR, Answer: "A"}, "the", false},
		{QA{Type: TypeOCR, Answer: "7"}, "seven", true},
		{QA{Type: TypeOCR, Answer: "7"}, "1", false},
	}
	for _, c := range cases {
		if got := Correct(c.qa, c.pred); got != c.want {
			t.Errorf("Correct(%+v, %q) = %v, want %v", c.qa, c.pred, got, c.want)
		}
	}
}

func TestEvaluate(t *testing.T) {
	qas := []QA{
		{ID: "1", Type: TypeExist, PopeSplit: PopeRandom, Answer: "Yes"},
		{ID: "2", Type: TypeExist, PopeSplit: PopeRandom, Answer: "No"},
		{ID: "3", Type: TypeExist, PopeSplit: PopeAdversarial, Answer: "No"},
		{ID: "4", Type: TypeExist, PopeSplit: PopeAdversarial, Answer: "Yes"},
		{ID: "5", Type: TypeCount, Answer: "3"},
		{ID: "6", Type: TypeMC, Answer: "B"},
	}
	preds := []string{"Yes", "No", "Yes", "No", "three", "A"}
	got := Evaluate(qas, preds)
	check := func(key string, n, correct int) {
		t.Helper()
		if s := got[key]; s.N != n || s.Correct != correct {
			t.Errorf("%s: %+v, want N=%d correct=%d", key, s, n, correct)
		}
	}
	check("all", 6, 3)
	check(TypeExist, 4, 2)
	check("exist/random", 2, 2)
	check("exist/adversarial", 2, 0)
	check(TypeCount, 1, 1)
	check(TypeMC, 1, 0)
	ex := got[TypeExist]
	if ex.TP != 1 || ex.FP != 1 || ex.TN != 1 || ex.FN != 1 {
		t.Errorf("confusion %+v", ex)
	}
	if math.Abs(ex.F1()-0.5) > 1e-12 || math.Abs(ex.YesRatio()-0.5) > 1e-12 || math.Abs(ex.Accuracy()-0.5) > 1e-12 {
		t.Errorf("F1 %v yes ratio %v acc %v", ex.F1(), ex.YesRatio(), ex.Accuracy())
	}
	if r := got["exist/random"]; r.F1() != 1 {
		t.Errorf("random F1 %v", r.F1())
	}
	// Missing predictions count as wrong (empty string).
	if s := Evaluate(qas, nil)["all"]; s.N != 6 || s.Correct != 2 { // "" reads as yes for POPE
		t.Errorf("no predictions: %+v", s)
	}
}

func TestBlindBaselineHandMade(t *testing.T) {
	mk := func(tpl, typ, q, a string) Sample {
		return Sample{Type: typ, Template: tpl, Conversations: []Turn{{"human", ImagePrefix + q}, {"gpt", a}}}
	}
	train := []Sample{
		mk("t1", TypeCount, "How many circles are there?", "1"),
		mk("t1", TypeCount, "How many circles are there?", "1"),
		mk("t1", TypeCount, "How many squares are there?", "2"),
		mk("t2", TypeExist, "Is there a red circle in the image?", "Yes"),
		mk("t2", TypeExist, "Is there a red circle in the image?", "No"),
	}
	b := BlindBaseline(train)
	if math.Abs(b[TypeCount]-2.0/3) > 1e-12 || b[TypeExist] != 0.5 || math.Abs(b["all"]-3.0/5) > 1e-12 {
		t.Errorf("BlindBaseline = %v", b)
	}
	test := []Sample{
		mk("t1", TypeCount, "How many squares are there?", "2"), // memorised question
		mk("t1", TypeCount, "How many rings are there?", "1"),   // unseen: template majority "1"
		mk("t1", TypeCount, "How many circles are there?", "0"),
	}
	if q := BlindQuestionBaseline(train, test); math.Abs(q[TypeCount]-2.0/3) > 1e-12 {
		t.Errorf("BlindQuestionBaseline = %v", q)
	}
}
