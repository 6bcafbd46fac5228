package eval

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// MME subtasks, in the order of the official eval_tool/calculation.py.
var (
	MMEPerception = []string{"existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR"}
	MMECognition  = []string{"commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning"}
)

// MMERow is one line of an MME result file: image, question, ground truth and prediction.
type MMERow struct {
	Image, Question, GT, Pred string
	File                      string
	Line                      int
}

// MMEParse maps a prediction to "yes", "no" or "other" as calculation.py does: lower-case; exact
// "yes"/"no"; else "yes" if the first four characters contain "yes", "no" if they contain "no".
func MMEParse(pred string) string {
	p := pyLower(pred)
	if p == "yes" || p == "no" {
		return p
	}
	r := []rune(p)
	if len(r) > 4 {
		r = r[:4]
	}
	prefix := string(r)
	switch {
	case strings.Contains(prefix, "yes"):
		return "yes"
	case strings.Contains(prefix, "no"):
		return "no"
	}
	return "other"
}

// MMEGT is the MME ground truth: subtask -> image file base name (no extension) -> question -> answer.
type MMEGT struct {
	Path string
	GT   map[string]map[string]map[string]string
}

// LoadMMEGT reads MME_Benchmark_release_version: for each subtask directory, either
// images/ + questions_answers_YN/*.txt or the *.txt files beside the images; each line is
// "question<TAB>answer".
func LoadMMEGT(root string) (*MMEGT, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	g := &MMEGT{Path: root, GT: map[string]map[string]map[string]string{}}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		cat := e.Name()
		qa := filepath.Join(root, cat)
		if st, err := os.Stat(filepath.Join(qa, "images")); err == nil && st.IsDir() {
			qa = filepath.Join(qa, "questions_answers_YN")
		}
		files, err := os.ReadDir(qa)
		if err != nil {
			return nil, fmt.Errorf("MME subtask %s: %v", cat, err)
		}
		for _, f := range files {
			if f.IsDir() || !strings.HasSuffix(f.Name(), ".txt") {
				continue
			}
			p := filepath.Join(qa, f.Name())
			base := strings.TrimSuffix(f.Name(), ".txt")
			lines, err := readLines(p)
			if err != nil {
				return nil, err
			}
			for i, l := range lines {
				l = pyStrip(l)
				if l == "" {
					continue
				}
				parts := strings.Split(l, "\t")
				if len(parts) != 2 {
					return nil, lineError(p, i+1, "expected \"question<TAB>answer\", got %d fields", len(parts))
				}
				if g.GT[cat] == nil {
					g.GT[cat] = map[string]map[string]string{}
				}
				if g.GT[cat][base] == nil {
					g.GT[cat][base] = map[string]string{}
				}
				g.GT[cat][base][parts[0]] = parts[1]
			}
		}
	}
	if len(g.GT) == 0 {
		return nil, fmt.Errorf("%s: no MME subtask directories with question files", root)
	}
	return g, nil
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		out = append(out, strings.TrimSuffix(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %v", path, len(out)+1, err)
	}
	return out, nil
}

const mmeShortSuffix = "Answer the question using a single word or phrase."

// MMERowsFromAnswers builds the per-subtask result rows from LLaVA answers the way LLaVA's
// convert_answer_to_mme.py does: question_id is "<subtask>/<image file>", the prompt minus the
// short-answer suffix (plus " Please answer yes or no." when missing) is looked up in the ground
// truth; rows keep answers-file order within a subtask.
func MMERowsFromAnswers(answers []Answer, gt *MMEGT) (map[string][]MMERow, error) {
	rows := map[string][]MMERow{}
	for _, a := range answers {
		parts := strings.Split(a.QuestionID, "/")
		if len(parts) < 2 {
			return nil, lineError(a.File, a.Line, "MME question_id %q is not \"<subtask>/<image>\"", a.QuestionID)
		}
		cat := parts[0]
		img := parts[len(parts)-1]
		base := strings.SplitN(img, ".", 2)[0]
		if !a.HasPrompt {
			return nil, lineError(a.File, a.Line, "MME answer has no \"prompt\" to find its question")
		}
		prompt := a.Prompt
		if strings.Contains(prompt, mmeShortSuffix) {
			prompt = pyStrip(strings.ReplaceAll(prompt, mmeShortSuffix, ""))
		}
		byQ := gt.GT[cat][base]
		ans, ok := "", false
		if !strings.Contains(prompt, "Please answer yes or no.") {
			prompt += " Please answer yes or no."
			if ans, ok = byQ[prompt]; !ok {
				prompt = strings.Replace(prompt, " Please answer yes or no.", "  Please answer yes or no.", 1)
			}
		}
		if !ok {
			ans, ok = byQ[prompt]
		}
		if !ok {
			return nil, lineError(a.File, a.Line, "MME question %q of %s/%s not found in %s", prompt, cat, base, gt.Path)
		}
		rows[cat] = append(rows[cat], MMERow{Image: base + ".txt", Question: prompt, GT: ans, Pred: a.Text, File: a.File, Line: a.Line})
	}
	return rows, nil
}

// LoadMMEResultsDir reads calculation.py's input: <subtask>.txt files of
// "image<TAB>question<TAB>gt<TAB>prediction" lines.
func LoadMMEResultsDir(dir string) (map[string][]MMERow, error) {
	rows := map[string][]MMERow{}
	for _, task := range append(append([]string{}, MMEPerception...), MMECognition...) {
		p := filepath.Join(dir, task+".txt")
		lines, err := readLines(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for i, l := range lines {
			if l == "" {
				continue
			}
			f := strings.Split(l, "\t")
			if len(f) != 4 {
				return nil, lineError(p, i+1, "expected 4 tab-separated fields (image, question, gt, prediction), got %d", len(f))
			}
			rows[task] = append(rows[task], MMERow{Image: f[0], Question: f[1], GT: f[2], Pred: f[3], File: p, Line: i + 1})
		}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no MME result files (<subtask>.txt)", dir)
	}
	return rows, nil
}

// ScoreMME scores MME rows as calculation.py does. Per subtask: acc (percent of questions right),
// acc_plus (percent of images, taken as consecutive pairs of rows, with both right), score =
// acc + acc_plus. "perception" and "cognition" sum the scores of the subtasks present;
// "perception/20" is how the Switch-KD paper reports MME.
func ScoreMME(rows map[string][]MMERow) (*Metrics, error) {
	m := NewMetrics("mme")
	type sub struct{ acc, accPlus, score float64 }
	res := map[string]sub{}
	var unknown []string
	for task := range rows {
		if !contains(MMEPerception, task) && !contains(MMECognition, task) {
			unknown = append(unknown, task)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("mme: unknown subtask(s) %v", sortedStrings(unknown))
	}
	for task, rs := range rows {
		if len(rs)%2 != 0 {
			last := rs[len(rs)-1]
			return nil, lineError(last.File, last.Line, "MME subtask %s has %d questions; every image needs exactly two", task, len(rs))
		}
		correct, plus := 0, 0
		for i := 0; i < len(rs); i += 2 {
			both := 0
			for _, r := range rs[i : i+2] {
				gt := pyLower(r.GT)
				if gt != "yes" && gt != "no" {
					return nil, lineError(r.File, r.Line, "MME ground truth %q is not yes/no", r.GT)
				}
				if MMEParse(r.Pred) == gt {
					correct++
					both++
				}
			}
			if both == 2 {
				plus++
			}
		}
		acc := float64(correct) / float64(len(rs))
		accPlus := float64(plus) / float64(len(rs)/2)
		score := 0.0
		score += acc * 100
		score += accPlus * 100
		res[task] = sub{acc * 100, accPlus * 100, score}
	}
	total := func(list []string) (float64, bool) {
		s, any := 0.0, false
		for _, t := range list {
			if r, ok := res[t]; ok {
				s += r.score
				any = true
			}
		}
		return s, any
	}
	if p, ok := total(MMEPerception); ok {
		m.Set("perception", p)
		m.Set("perception/20", p/20)
	}
	if c, ok := total(MMECognition); ok {
		m.Set("cognition", c)
	}
	for _, list := range [][]string{MMEPerception, MMECognition} {
		for _, t := range list {
			if r, ok := res[t]; ok {
				m.Set(t+"/score", r.score)
				m.Set(t+"/acc", r.acc)
				m.Set(t+"/acc_plus", r.accPlus)
			}
		}
	}
	return m, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
