package eval

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// SQAProblem is one ScienceQA problem (problems.json).
type SQAProblem struct {
	ID       string
	Question string   `json:"question"`
	Choices  []string `json:"choices"`
	Answer   int      `json:"answer"`
	Hint     string   `json:"hint"`
	Image    *string  `json:"image"`
}

// SQARefs is ScienceQA's problems.json restricted to one split of pid_splits.json.
type SQARefs struct {
	Path     string
	Split    string
	IDs      []string // split order
	Problems map[string]*SQAProblem
}

// LoadSQARefs reads problems.json and pid_splits.json from dir and keeps split ("test" by default).
// dir may also be the problems.json file, with pid_splits.json beside it.
func LoadSQARefs(dir, split string) (*SQARefs, error) {
	if split == "" {
		split = "test"
	}
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		dir = filepath.Dir(dir)
	}
	pp := filepath.Join(dir, "problems.json")
	sp := filepath.Join(dir, "pid_splits.json")
	var raw map[string]json.RawMessage
	if err := readJSONFile(pp, &raw); err != nil {
		return nil, err
	}
	var splits map[string][]string
	if err := readJSONFile(sp, &splits); err != nil {
		return nil, err
	}
	ids, ok := splits[split]
	if !ok {
		return nil, fmt.Errorf("%s: no split %q", sp, split)
	}
	refs := &SQARefs{Path: dir, Split: split, IDs: ids, Problems: map[string]*SQAProblem{}}
	for _, id := range ids {
		r, ok := raw[id]
		if !ok {
			return nil, fmt.Errorf("%s: problem %s of split %s is missing", pp, id, split)
		}
		var p SQAProblem
		if err := json.Unmarshal(r, &p); err != nil {
			return nil, fmt.Errorf("%s: problem %s: %v", pp, id, err)
		}
		if p.Answer < 0 || p.Answer >= len(p.Choices) {
			return nil, fmt.Errorf("%s: problem %s: answer %d out of range of %d choices", pp, id, p.Answer, len(p.Choices))
		}
		p.ID = id
		refs.Problems[id] = &p
	}
	return refs, nil
}

var sqaOptions = []string{"A", "B", "C", "D", "E"}
var sqaAnswerIs = regexp.MustCompile(`The answer is ([A-Z]).`)

// SQAParse extracts the letter of a ScienceQA answer exactly as LLaVA's eval_science_qa.py: the
// whole text is one of A-E; or it starts with "<A-E>. "; or "The answer is X" followed by any
// character occurs exactly once. Anything else is "FAILED" (scored wrong; the official random
// fallback is dead code).
func SQAParse(text string) string {
	if contains(sqaOptions, text) {
		return text
	}
	if len(text) >= 3 && contains(sqaOptions, text[:1]) && text[1:3] == ". " {
		return text[:1]
	}
	// findall with one group: non-overlapping matches of the whole pattern.
	ms := sqaAnswerIs.FindAllStringSubmatch(text, -1)
	if len(ms) == 1 {
		return ms[0][1]
	}
	return "FAILED"
}

// ScoreSQA scores ScienceQA as eval_science_qa.py: every problem of the split counts (missing
// answers are wrong); "img_accuracy" (ScienceQA-IMG, the number papers report) counts the problems
// whose answer prompt contains "<image>" — when an answer has no prompt field, whether the problem
// has an image decides. The letter must be one of the problem's choices.
func ScoreSQA(answers []Answer, refs *SQARefs) (*Metrics, error) {
	byID := map[string]*Answer{}
	for i := range answers {
		a := &answers[i]
		if _, ok := refs.Problems[a.QuestionID]; !ok {
			continue // official: predictions outside the split are ignored
		}
		byID[a.QuestionID] = a // later lines win, as in the dict comprehension
	}
	correct, total, imgCorrect, imgTotal, failed := 0, 0, 0, 0, 0
	for _, id := range refs.IDs {
		p := refs.Problems[id]
		text, multimodal := "FAILED", false
		if a, ok := byID[id]; ok {
			text = a.Text
			if a.HasPrompt {
				multimodal = strings.Contains(a.Prompt, "<image>")
			} else {
				multimodal = p.Image != nil
			}
		}
		letter := SQAParse(text)
		idx := -1
		if letter != "FAILED" {
			for i, o := range sqaOptions[:min(len(p.Choices), len(sqaOptions))] {
				if o == letter {
					idx = i
				}
			}
		}
		if idx < 0 {
			failed++
		}
		ok := idx == p.Answer
		total++
		if ok {
			correct++
		}
		if multimodal {
			imgTotal++
			if ok {
				imgCorrect++
			}
		}
	}
	if total == 0 {
		return nil, fmt.Errorf("sqa: the split has no problems")
	}
	m := NewMetrics("sqa")
	if imgTotal > 0 {
		m.Set("img_accuracy", float64(imgCorrect)/float64(imgTotal)*100)
	}
	m.Set("accuracy", float64(correct)/float64(total)*100)
	m.Set("img_correct", float64(imgCorrect))
	m.Set("img_count", float64(imgTotal))
	m.Set("correct", float64(correct))
	m.Set("count", float64(total))
	m.Set("failed", float64(failed))
	return m, nil
}

// SQAPrompt builds the ScienceQA question text as LLaVA-1.5's llava_test_CQM-A.json and
// lmms-eval's scienceqa_img do: "Context: <hint>\n" (only with a non-empty hint), the question, one
// "A. choice" line per choice, and the task's suffix. The image token is added by the caller.
func SQAPrompt(p *SQAProblem) string {
	var b strings.Builder
	if p.Hint != "" {
		b.WriteString("Context: " + p.Hint + "\n")
	}
	b.WriteString(p.Question)
	for i, c := range p.Choices {
		fmt.Fprintf(&b, "\n%c. %s", 'A'+i, c)
	}
	b.WriteString("\n" + SuffixMultipleChoice)
	return b.String()
}

// sortedKeys returns the keys of a map in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
