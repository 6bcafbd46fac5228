package eval

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// POPERefs holds POPE labels per split (random, popular, adversarial).
//
// Official layout (eval_pope.py): a directory of label files coco_pope_<split>.json (JSON lines
// with "label": "yes"/"no") and LLaVA's question file (llava_pope_test.jsonl) giving each
// question_id its "category" (split). As in eval_pope.py, the answers of a split are taken in
// answers-file order and paired with that split's labels by position, not by id.
//
// A single JSON-lines file whose lines carry question_id, label and (optionally) category is
// accepted too; then labels are matched by question_id.
type POPERefs struct {
	Path       string
	Splits     []string            // label-file order (sorted by name)
	Labels     map[string][]string // split -> labels in file order (positional mode)
	Category   map[string]string   // question_id -> split
	ByID       map[string]string   // question_id -> label (by-id mode)
	positional bool
}

func readPOPELabels(path string) (labels []string, ids []string, cats []string, err error) {
	err = forEachJSONLine(path, func(line int, obj map[string]json.RawMessage) error {
		l, has, err := getString(obj, "label")
		if err != nil || !has {
			return lineError(path, line, "missing or invalid \"label\"")
		}
		labels = append(labels, l)
		id, _ := idString(obj["question_id"])
		ids = append(ids, id)
		c, _, _ := getString(obj, "category")
		cats = append(cats, c)
		return nil
	})
	return
}

// LoadPOPERefs reads POPE labels from a directory (coco_pope_<split>.json label files plus the
// LLaVA question file llava_pope_test.jsonl, looked for in the directory and its parent, or the
// only other *.jsonl in the directory) or from one combined JSON-lines label file.
func LoadPOPERefs(path string) (*POPERefs, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	refs := &POPERefs{Path: path, Labels: map[string][]string{}, Category: map[string]string{}, ByID: map[string]string{}}
	if !st.IsDir() {
		labels, ids, cats, err := readPOPELabels(path)
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for i := range labels {
			if ids[i] == "" {
				return nil, fmt.Errorf("%s: line %d of labels has no question_id", path, i+1)
			}
			c := cats[i]
			if c == "" {
				c = "all"
			}
			if !seen[c] {
				seen[c] = true
				refs.Splits = append(refs.Splits, c)
			}
			refs.ByID[ids[i]] = labels[i]
			refs.Category[ids[i]] = c
		}
		sort.Strings(refs.Splits)
		return refs, nil
	}
	refs.positional = true
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var others []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() {
			continue
		}
		if strings.HasPrefix(n, "coco_pope_") && strings.HasSuffix(n, ".json") {
			split := n[len("coco_pope_") : len(n)-len(".json")]
			labels, _, _, err := readPOPELabels(filepath.Join(path, n))
			if err != nil {
				return nil, err
			}
			refs.Splits = append(refs.Splits, split)
			refs.Labels[split] = labels
		} else if strings.HasSuffix(n, ".jsonl") {
			others = append(others, filepath.Join(path, n))
		}
	}
	if len(refs.Splits) == 0 {
		return nil, fmt.Errorf("%s: no coco_pope_<split>.json label files", path)
	}
	sort.Strings(refs.Splits)
	qfile := ""
	for _, c := range []string{filepath.Join(path, "llava_pope_test.jsonl"), filepath.Join(filepath.Dir(filepath.Clean(path)), "llava_pope_test.jsonl")} {
		if _, err := os.Stat(c); err == nil {
			qfile = c
			break
		}
	}
	if qfile == "" {
		if len(others) != 1 {
			return nil, fmt.Errorf("%s: cannot find the POPE question file (llava_pope_test.jsonl) with each question's category", path)
		}
		qfile = others[0]
	}
	qs, err := ReadQuestions(qfile)
	if err != nil {
		return nil, err
	}
	for _, q := range qs {
		if q.Category == "" {
			return nil, lineError(qfile, q.Line, "question %s has no \"category\"", q.QuestionID)
		}
		refs.Category[q.QuestionID] = q.Category
	}
	return refs, nil
}

// POPEYes parses a POPE answer as eval_pope.py does: keep the text before the first period,
// delete commas, split on single spaces; any word "No", "not" or "no" means no, anything else yes.
func POPEYes(text string) bool {
	if i := strings.IndexByte(text, '.'); i >= 0 {
		text = text[:i]
	}
	text = strings.ReplaceAll(text, ",", "")
	for _, w := range strings.Split(text, " ") {
		if w == "No" || w == "not" || w == "no" {
			return false
		}
	}
	return true
}

// POPEStats are the confusion counts and eval_pope.py's metrics (fractions, eps 1e-6 as in
// TinyLLaVA's eval_pope.py).
type POPEStats struct {
	TP, FP, TN, FN                            int
	Accuracy, Precision, Recall, F1, YesRatio float64
}

// popeStats pairs predictions and labels by position (zip: the shorter length wins).
func popeStats(preds []bool, labels []string) (POPEStats, error) {
	var s POPEStats
	if len(preds) == 0 {
		return s, fmt.Errorf("no answers")
	}
	yes := 0
	for _, p := range preds {
		if p {
			yes++
		}
	}
	s.YesRatio = float64(yes) / float64(len(preds))
	n := min(len(preds), len(labels))
	for i := 0; i < n; i++ {
		pos := labels[i] != "no"
		switch {
		case preds[i] && pos:
			s.TP++
		case preds[i] && !pos:
			s.FP++
		case !preds[i] && !pos:
			s.TN++
		default:
			s.FN++
		}
	}
	if n == 0 {
		return s, fmt.Errorf("no labels")
	}
	const eps = 1e-6
	s.Precision = float64(s.TP) / (float64(s.TP+s.FP) + eps)
	s.Recall = float64(s.TP) / (float64(s.TP+s.FN) + eps)
	s.F1 = 2 * s.Precision * s.Recall / (s.Precision + s.Recall + eps)
	s.Accuracy = float64(s.TP+s.TN) / float64(s.TP+s.TN+s.FP+s.FN)
	return s, nil
}

// ScorePOPE scores POPE answers per split. Keys per split: <split>/accuracy, precision, recall,
// f1, yes_ratio (percent), tp, fp, tn, fn, count; and overall "f1" and "accuracy": the mean over
// the splits of the split values (how LLaVA / TinyLLaVA report POPE).
func ScorePOPE(answers []Answer, refs *POPERefs) (*Metrics, error) {
	preds := map[string][]bool{}
	labels := map[string][]string{}
	for _, a := range answers {
		c, ok := refs.Category[a.QuestionID]
		if !ok {
			return nil, lineError(a.File, a.Line, "question_id %s is not in the POPE questions of %s", a.QuestionID, refs.Path)
		}
		preds[c] = append(preds[c], POPEYes(a.Text))
		if !refs.positional {
			labels[c] = append(labels[c], refs.ByID[a.QuestionID])
		}
	}
	if refs.positional {
		labels = refs.Labels
	}
	m := NewMetrics("pope")
	var f1s, accs []float64
	var per []*POPEStats
	var names []string
	for _, split := range refs.Splits {
		if len(preds[split]) == 0 {
			continue
		}
		s, err := popeStats(preds[split], labels[split])
		if err != nil {
			return nil, fmt.Errorf("pope split %s: %v", split, err)
		}
		per = append(per, &s)
		names = append(names, split)
		f1s = append(f1s, s.F1)
		accs = append(accs, s.Accuracy)
	}
	if len(per) == 0 {
		return nil, fmt.Errorf("pope: no answer belongs to a split with labels in %s", refs.Path)
	}
	m.Set("f1", 100*mean(f1s))
	m.Set("accuracy", 100*mean(accs))
	for i, s := range per {
		p := names[i] + "/"
		m.Set(p+"accuracy", 100*s.Accuracy)
		m.Set(p+"precision", 100*s.Precision)
		m.Set(p+"recall", 100*s.Recall)
		m.Set(p+"f1", 100*s.F1)
		m.Set(p+"yes_ratio", 100*s.YesRatio)
		m.Set(p+"tp", float64(s.TP))
		m.Set(p+"fp", float64(s.FP))
		m.Set(p+"tn", float64(s.TN))
		m.Set(p+"fn", float64(s.FN))
		m.Set(p+"count", float64(len(preds[names[i]])))
	}
	return m, nil
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
