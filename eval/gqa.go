package eval

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// GQAQuestion is the part of a GQA question (e.g. testdev_balanced_questions.json) scoring needs.
type GQAQuestion struct {
	Answer     string `json:"answer"`
	IsBalanced *bool  `json:"isBalanced"`
	Types      struct {
		Structural string `json:"structural"`
	} `json:"types"`
}

// GQARefs is a GQA questions file: question id -> question.
type GQARefs struct {
	Path      string
	Questions map[string]*GQAQuestion
	Order     []string
}

// LoadGQARefs reads a GQA questions JSON ({"<questionId>": {"answer": ..., "isBalanced": ...,
// "types": {"structural": ...}}}). A directory is searched for testdev_balanced_questions.json.
func LoadGQARefs(path string) (*GQARefs, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "testdev_balanced_questions.json")
	}
	var raw map[string]json.RawMessage
	if err := readJSONFile(path, &raw); err != nil {
		return nil, err
	}
	refs := &GQARefs{Path: path, Questions: map[string]*GQAQuestion{}}
	for _, id := range sortedKeys(raw) {
		var q GQAQuestion
		if err := json.Unmarshal(raw[id], &q); err != nil {
			return nil, fmt.Errorf("%s: question %s: %v", path, id, err)
		}
		refs.Questions[id] = &q
		refs.Order = append(refs.Order, id)
	}
	if len(refs.Questions) == 0 {
		return nil, fmt.Errorf("%s: no questions", path)
	}
	return refs, nil
}

// GQAPrediction is what LLaVA's convert_gqa_for_eval.py turns an answer into: trailing periods
// removed, then lower case.
func GQAPrediction(text string) string {
	return pyLower(strings.TrimRight(text, "."))
}

// ScoreGQA scores as the official GQA eval.py (LLaVA's variant without scene graphs / choices):
// exact match between the converted prediction and the answer over the balanced questions
// ("accuracy"), split into "binary" and "open" (structural type "query"). As in eval.py every
// balanced question needs a prediction; a missing one is an error. Questions without
// "isBalanced" count as balanced.
func ScoreGQA(answers []Answer, refs *GQARefs) (*Metrics, error) {
	pred := map[string]string{}
	for _, a := range answers {
		pred[a.QuestionID] = GQAPrediction(a.Text)
	}
	var acc, bin, open []float64
	for _, id := range refs.Order {
		q := refs.Questions[id]
		if q.IsBalanced != nil && !*q.IsBalanced {
			continue
		}
		p, ok := pred[id]
		if !ok {
			return nil, fmt.Errorf("gqa: question %s of %s has no answer (the official eval.py requires all)", id, refs.Path)
		}
		s := 0.0
		if p == q.Answer {
			s = 1
		}
		acc = append(acc, s)
		if q.Types.Structural == "query" {
			open = append(open, s)
		} else {
			bin = append(bin, s)
		}
	}
	if len(acc) == 0 {
		return nil, fmt.Errorf("gqa: no balanced questions in %s", refs.Path)
	}
	m := NewMetrics("gqa")
	m.Set("accuracy", avg(acc)*100)
	m.Set("binary", avg(bin)*100)
	m.Set("open", avg(open)*100)
	m.Set("count", float64(len(acc)))
	return m, nil
}

// avg is eval.py's avg: 0 for an empty list.
func avg(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
