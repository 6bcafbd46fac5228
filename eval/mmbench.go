package eval

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// MMBRow is one row of an MMBench / MMBench-CN TSV (index, question, hint, A-D, answer, category,
// l2-category; the base64 image is not kept).
type MMBRow struct {
	Index      int64
	Question   string
	Hint       string   // "" when absent / nan
	Options    []string // A, B, C, D up to the first missing one
	Answer     string   // letter; "" for test splits
	Category   string
	L2Category string
	Line       int
}

// MMBRefs is a loaded MMBench TSV.
type MMBRefs struct {
	Path  string
	Rows  []MMBRow
	byIdx map[int64]int
}

// mmbIsNone is LLaVA's is_none: a missing cell, NaN, "nan" or "none" (any case).
func mmbIsNone(s string) bool {
	l := strings.ToLower(s)
	return s == "" || l == "nan" || l == "none"
}

// openTSV opens a TSV (tab separated, header row, optional double quotes) and reads its
// header: the column index of each name (a UTF-8 BOM and spaces trimmed).
func openTSV(path string) (*os.File, *csv.Reader, map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, nil, err
	}
	r := csv.NewReader(f)
	r.Comma = '\t'
	r.LazyQuotes = true
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		f.Close()
		return nil, nil, nil, fmt.Errorf("%s:1: cannot read the header: %v", path, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimPrefix(strings.TrimSpace(h), "\ufeff")] = i
	}
	return f, r, col, nil
}

// LoadMMBenchTSV reads an MMBench TSV (tab separated, header row, optional double quotes).
func LoadMMBenchTSV(path string) (*MMBRefs, error) {
	f, r, col, err := openTSV(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	for _, need := range []string{"index", "question", "A", "B"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("%s:1: header has no %q column", path, need)
		}
	}
	refs := &MMBRefs{Path: path, byIdx: map[int64]int{}}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, lineError(path, pe.Line, "%v", pe.Err)
			}
			return nil, lineError(path, line, "%v", err)
		}
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return rec[i]
			}
			return ""
		}
		idx, err := strconv.ParseInt(strings.TrimSpace(get("index")), 10, 64)
		if err != nil {
			return nil, lineError(path, line, "index %q is not an integer", get("index"))
		}
		row := MMBRow{Index: idx, Question: get("question"), Answer: strings.TrimSpace(get("answer")),
			Category: get("category"), L2Category: get("l2-category"), Line: line}
		if h := get("hint"); !mmbIsNone(h) {
			row.Hint = h
		}
		for _, c := range []string{"A", "B", "C", "D"} {
			o := get(c)
			if mmbIsNone(o) {
				break
			}
			row.Options = append(row.Options, o)
		}
		if len(row.Options) < 2 {
			return nil, lineError(path, line, "question %d has fewer than two options", idx)
		}
		if row.Answer != "" && (len(row.Answer) != 1 || row.Answer[0] < 'A' || int(row.Answer[0]-'A') >= len(row.Options)) {
			return nil, lineError(path, line, "answer %q is not one of the option letters", row.Answer)
		}
		if _, dup := refs.byIdx[idx]; dup {
			return nil, lineError(path, line, "duplicate index %d", idx)
		}
		refs.byIdx[idx] = len(refs.Rows)
		refs.Rows = append(refs.Rows, row)
	}
	if len(refs.Rows) == 0 {
		return nil, fmt.Errorf("%s: no questions", path)
	}
	return refs, nil
}

// MMBenchPrompt builds the question as LLaVA's model_vqa_mmbench.py: hint + "\n" + question when
// there is a hint, then "\nA. option" lines (options rotated left by round), then the suffix
// (English or Chinese).
func MMBenchPrompt(row *MMBRow, round int, suffix string) string {
	q := row.Question
	if row.Hint != "" {
		q = row.Hint + "\n" + q
	}
	opts := rotate(row.Options, round)
	for i, o := range opts {
		q += "\n" + string(rune('A'+i)) + ". " + o
	}
	return q + "\n" + suffix
}

func rotate(opts []string, r int) []string {
	n := len(opts)
	out := make([]string, n)
	for i := range opts {
		out[i] = opts[(i+r)%n]
	}
	return out
}

// MMBenchInferOption is VLMEvalKit's / lmms-eval's can_infer_option: the letter A-E standing alone
// as a word (unless "A" may be an article in a longer answer), or written "A.", "A,", "A:", "A)",
// "A).", "(A)", "(A).", ":A", ":A,", ":A.", ":A)", ":A)."; exactly one letter must match.
func MMBenchInferOption(answer string) string {
	const choices = "ABCDE"
	if strings.Contains(answer, "Failed to obtain answer via API") {
		return ""
	}
	splits := pySplit(answer)
	count := func(prefix, suffix string) int {
		n := 0
		for _, c := range choices {
			if containsStr(splits, prefix+string(c)+suffix) {
				n++
			}
		}
		return n
	}
	if count("", "") == 1 {
		for _, c := range choices {
			if containsStr(splits, "A") && len(splits) > 3 {
				break
			}
			if containsStr(splits, string(c)) {
				return string(c)
			}
		}
	}
	tups := [][2]string{{"", "."}, {"", ","}, {"", ":"}, {"", ")"}, {"", ")."}, {"(", ")"}, {"(", ")."}, {":", ""}, {":", ","}, {":", "."}, {":", ")"}, {":", ")."}}
	for _, t := range tups {
		if count(t[0], t[1]) == 1 {
			for _, c := range choices {
				if containsStr(splits, t[0]+string(c)+t[1]) {
					return string(c)
				}
			}
		}
	}
	return ""
}

// MMBenchInferText is can_infer_text: the letter whose option text (lower case) is the only one
// contained in the lower-cased answer.
func MMBenchInferText(answer string, options []string) string {
	a := pyLower(answer)
	found := ""
	n := 0
	for i, o := range options {
		if strings.Contains(a, pyLower(o)) {
			found = string(rune('A' + i))
			n++
		}
	}
	if n == 1 {
		return found
	}
	return ""
}

// MMBenchExtract is can_infer: option letter first, then option text; "" when neither works (the
// official evaluator would then ask ChatGPT; here that counts as wrong).
func MMBenchExtract(answer string, options []string) string {
	if c := MMBenchInferOption(answer); c != "" {
		return c
	}
	return MMBenchInferText(answer, options)
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ScoreMMBench scores MMBench / MMBench-CN with circular evaluation: a question counts as right only
// if every one of its passes is. Passes are either the TSV's circular copies (index + k*1e6, each
// answered under its own index, as in OpenCompass / VLMEvalKit) or LLaVA's --all-rounds answers
// (same question_id, round_id r = options rotated left by r). A missing pass answer is wrong.
// Keys: accuracy, then category/<c> and l2/<c> (percent), count.
func ScoreMMBench(task string, answers []Answer, refs *MMBRefs) (*Metrics, error) {
	type pass struct {
		text  string
		round int
	}
	byIdx := map[int64][]pass{}
	for _, a := range answers {
		idx, err := strconv.ParseInt(a.QuestionID, 10, 64)
		if err != nil {
			return nil, lineError(a.File, a.Line, "MMBench question_id %q is not an integer index", a.QuestionID)
		}
		if _, ok := refs.byIdx[idx]; !ok {
			return nil, lineError(a.File, a.Line, "index %d is not in %s", idx, refs.Path)
		}
		byIdx[idx] = append(byIdx[idx], pass{a.Text, a.RoundID})
	}
	const circ = 1000000
	groups := map[int64][]int{} // main index -> rows (main first, then copies in file order)
	var mains []int64
	for i, r := range refs.Rows {
		if r.Index < circ {
			mains = append(mains, r.Index)
			groups[r.Index] = append([]int{i}, groups[r.Index]...)
		}
	}
	for i, r := range refs.Rows {
		if r.Index >= circ {
			g := r.Index % circ
			if _, ok := groups[g]; !ok {
				return nil, lineError(refs.Path, r.Line, "circular copy %d has no main question %d", r.Index, g)
			}
			groups[g] = append(groups[g], i)
		}
	}
	hit := map[int64]bool{}
	for _, g := range mains {
		ok := true
		for _, ri := range groups[g] {
			row := &refs.Rows[ri]
			if row.Answer == "" {
				return nil, lineError(refs.Path, row.Line, "question %d has no answer (test split?)", row.Index)
			}
			ps := byIdx[row.Index]
			if len(ps) == 0 {
				ok = false
				break
			}
			seen := map[int]bool{}
			for _, p := range ps {
				n := len(row.Options)
				r := p.round % n
				if seen[r] {
					return nil, fmt.Errorf("mmbench: question %d answered twice for round %d", row.Index, p.round)
				}
				seen[r] = true
				gt := string(rune('A' + ((int(row.Answer[0]-'A')-r)%n+n)%n))
				if MMBenchExtract(p.text, rotate(row.Options, r)) != gt {
					ok = false
				}
			}
		}
		hit[g] = ok
	}
	if len(mains) == 0 {
		return nil, fmt.Errorf("%s: no main questions (index < 1000000)", refs.Path)
	}
	m := NewMetrics(task)
	var all []float64
	cat := map[string][]float64{}
	l2 := map[string][]float64{}
	for _, g := range mains {
		v := 0.0
		if hit[g] {
			v = 1
		}
		all = append(all, v)
		row := refs.Rows[refs.byIdx[g]]
		if row.Category != "" {
			cat[row.Category] = append(cat[row.Category], v)
		}
		if row.L2Category != "" {
			l2[row.L2Category] = append(l2[row.L2Category], v)
		}
	}
	m.Set("accuracy", mean(all)*100)
	for _, c := range sortedKeys(l2) {
		m.Set("l2/"+c, mean(l2[c])*100)
	}
	for _, c := range sortedKeys(cat) {
		m.Set("category/"+c, mean(cat[c])*100)
	}
	m.Set("count", float64(len(all)))
	return m, nil
}
