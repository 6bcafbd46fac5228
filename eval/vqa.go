package eval

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// VQAItem is one annotated question with its human answers (10 for VQAv2, VizWiz and TextVQA).
type VQAItem struct {
	QuestionID string
	ImageID    string // TextVQA image_id / VizWiz image file
	Question   string
	Answers    []string
	AnswerType string // VQAv2 / VizWiz answer_type ("yes/no", "number", "other", "unanswerable")
}

// VQARefs is a loaded VQAv2, VizWiz or TextVQA annotation file.
type VQARefs struct {
	Path   string
	Items  []VQAItem
	byID   map[string]int
	byImgQ map[string]int // TextVQA: image_id + "\x00" + lower(question)
}

// LoadVQARefs reads the answers of
//   - VQAv2 annotations: {"annotations": [{"question_id", "answers": [{"answer"}...], "answer_type"}]};
//   - VizWiz annotations: [{"image", "question", "answers": [{"answer"}...], "answer_type"}]
//     (the question_id of an entry is its position in the list, as in LLaVA's vizwiz question file,
//     unless it has a "question_id"; its image name is accepted too);
//   - TextVQA: {"data": [{"question_id", "image_id", "question", "answers": ["..."]}]};
//   - or a plain JSON list of any of those entries.
func LoadVQARefs(path string) (*VQARefs, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	trim := strings.TrimLeft(string(data), " \t\r\n\ufeff")
	key := ""
	if strings.HasPrefix(trim, "{") {
		var probe map[string]json.RawMessage
		if err := readJSONFile(path, &probe); err != nil {
			return nil, err
		}
		switch {
		case probe["annotations"] != nil:
			key = "annotations"
		case probe["data"] != nil:
			key = "data"
		default:
			return nil, fmt.Errorf("%s: expected an \"annotations\" or \"data\" array (VQAv2 / TextVQA format)", path)
		}
	}
	doc, elems, offs, err := decodeArrayElems(path, key)
	if err != nil {
		return nil, err
	}
	refs := &VQARefs{Path: path, byID: map[string]int{}, byImgQ: map[string]int{}}
	for i, raw := range elems {
		var e struct {
			QuestionID json.RawMessage   `json:"question_id"`
			ImageID    json.RawMessage   `json:"image_id"`
			Image      string            `json:"image"`
			Question   string            `json:"question"`
			Answers    []json.RawMessage `json:"answers"`
			AnswerType string            `json:"answer_type"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, doc.errAt(offs[i], "entry %d: %v", i, err)
		}
		it := VQAItem{Question: e.Question, AnswerType: e.AnswerType}
		if id, ok := idString(e.QuestionID); ok {
			it.QuestionID = id
		} else {
			it.QuestionID = fmt.Sprint(i)
		}
		if id, ok := idString(e.ImageID); ok {
			it.ImageID = id
		} else {
			it.ImageID = e.Image
		}
		if len(e.Answers) == 0 {
			return nil, doc.errAt(offs[i], "entry %d (question_id %s): no \"answers\"", i, it.QuestionID)
		}
		for j, a := range e.Answers {
			var s string
			if json.Unmarshal(a, &s) == nil {
				it.Answers = append(it.Answers, s)
				continue
			}
			var d struct {
				Answer *string `json:"answer"`
			}
			if json.Unmarshal(a, &d) != nil || d.Answer == nil {
				return nil, doc.errAt(offs[i], "entry %d: answer %d is neither a string nor {\"answer\": ...}", i, j)
			}
			it.Answers = append(it.Answers, *d.Answer)
		}
		if _, dup := refs.byID[it.QuestionID]; dup {
			return nil, doc.errAt(offs[i], "duplicate question_id %s", it.QuestionID)
		}
		refs.byID[it.QuestionID] = len(refs.Items)
		if it.ImageID != "" {
			if _, ok := refs.byID[it.ImageID]; !ok && e.Image != "" {
				refs.byID[it.ImageID] = len(refs.Items) // VizWiz: image name as id
			}
			refs.byImgQ[it.ImageID+"\x00"+pyLower(it.Question)] = len(refs.Items)
		}
		refs.Items = append(refs.Items, it)
	}
	if len(refs.Items) == 0 {
		return nil, fmt.Errorf("%s: no annotations", path)
	}
	return refs, nil
}

var textvqaOCRPrompt = regexp.MustCompile(`(?s)Question: (.*?) Short answer:`)

// textVQAQuestion recovers the question from a TextVQA prompt the way eval_textvqa.py does;
// ok is false when the prompt has none of the known layouts.
func textVQAQuestion(prompt string) (string, bool) {
	lines := strings.Split(prompt, "\n")
	switch {
	case strings.HasPrefix(prompt, "OCR tokens: "):
		m := textvqaOCRPrompt.FindStringSubmatch(prompt)
		if m == nil {
			return "", false
		}
		return pyLower(m[1]), true
	case strings.Contains(prompt, "Reference OCR token: ") && len(lines) == 3:
		if strings.HasPrefix(prompt, "Reference OCR token:") {
			return pyLower(lines[1]), true
		}
		return pyLower(lines[0]), true
	case len(lines) == 2:
		return pyLower(lines[0]), true
	}
	return "", false
}

// lookup finds the annotation of an answer: for TextVQA the official key (question_id taken as the
// image_id, plus the question recovered from the prompt), else the question_id.
func (r *VQARefs) lookup(a Answer, textvqa bool) (*VQAItem, error) {
	if textvqa && a.HasPrompt {
		if q, ok := textVQAQuestion(a.Prompt); ok {
			if i, ok := r.byImgQ[a.QuestionID+"\x00"+q]; ok {
				return &r.Items[i], nil
			}
		}
	}
	if i, ok := r.byID[a.QuestionID]; ok {
		return &r.Items[i], nil
	}
	return nil, lineError(a.File, a.Line, "question_id %s has no annotation in %s", a.QuestionID, r.Path)
}

// ScoreVQA scores VQAv2, VizWiz or TextVQA answers with the soft VQA accuracy (percent) over all
// answers, plus the accuracy per answer type when the annotations carry one.
func ScoreVQA(task string, answers []Answer, refs *VQARefs) (*Metrics, error) {
	if len(answers) == 0 {
		return nil, fmt.Errorf("%s: no answers to score", task)
	}
	m := NewMetrics(task)
	sum := 0.0
	typeSum := map[string]float64{}
	typeN := map[string]int{}
	var types []string
	for _, a := range answers {
		it, err := refs.lookup(a, task == "textvqa")
		if err != nil {
			return nil, err
		}
		s := VQASoftScore(a.Text, it.Answers)
		sum += s
		if it.AnswerType != "" {
			if _, ok := typeN[it.AnswerType]; !ok {
				types = append(types, it.AnswerType)
			}
			typeSum[it.AnswerType] += s
			typeN[it.AnswerType]++
		}
	}
	m.Set("accuracy", 100*(sum/float64(len(answers))))
	for _, t := range sortedStrings(types) {
		m.Set("accuracy/"+t, 100*(typeSum[t]/float64(typeN[t])))
	}
	m.Set("count", float64(len(answers)))
	return m, nil
}
