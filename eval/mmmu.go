package eval

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MMMU categories by domain, as MMMU's data_utils (DOMAIN_CAT2SUB_CAT); only these count.
var mmmuDomains = []struct {
	Name string
	Cats []string
}{
	{"Art and Design", []string{"Art", "Art_Theory", "Design", "Music"}},
	{"Business", []string{"Accounting", "Economics", "Finance", "Manage", "Marketing"}},
	{"Science", []string{"Biology", "Chemistry", "Geography", "Math", "Physics"}},
	{"Health and Medicine", []string{"Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine", "Pharmacy", "Public_Health"}},
	{"Humanities and Social Science", []string{"History", "Literature", "Sociology", "Psychology"}},
	{"Tech and Engineering", []string{"Agriculture", "Architecture_and_Engineering", "Computer_Science", "Electronics", "Energy_and_Power", "Materials", "Mechanical_Engineering"}},
}

// MMMUItem is one MMMU question's reference.
type MMMUItem struct {
	ID           string
	QuestionType string   // "multiple-choice" or "open"
	GroundTruth  []string // one or more accepted answers (letters for multiple choice)
	AllChoices   []string // "A", "B", ... (empty when unknown)
	Index2Ans    map[string]string
}

// MMMURefs holds MMMU references by id ("validation_Art_Theory_12").
type MMMURefs struct {
	Path  string
	Items map[string]*MMMUItem
}

// LoadMMMURefs reads MMMU's answer_dict_val.json ({id: {"question_type", "ground_truth"}}) or a
// list of questions ({"id", "question_type", "answer" | "ground_truth", "all_choices",
// "index2ans" | "options"}), e.g. TinyLLaVA's anns_for_eval.json.
func LoadMMMURefs(path string) (*MMMURefs, error) {
	var raw any
	if err := readJSONFile(path, &raw); err != nil {
		return nil, err
	}
	refs := &MMMURefs{Path: path, Items: map[string]*MMMUItem{}}
	add := func(id string, obj map[string]any) error {
		it := &MMMUItem{ID: id, Index2Ans: map[string]string{}}
		it.QuestionType, _ = obj["question_type"].(string)
		if it.QuestionType == "" {
			return fmt.Errorf("%s: question %s has no question_type", path, id)
		}
		gt, ok := obj["ground_truth"]
		if !ok {
			gt = obj["answer"]
		}
		switch v := gt.(type) {
		case string:
			it.GroundTruth = []string{v}
		case json.Number:
			it.GroundTruth = []string{v.String()}
		case []any:
			for _, x := range v {
				it.GroundTruth = append(it.GroundTruth, fmt.Sprint(x))
			}
		default:
			return fmt.Errorf("%s: question %s has no ground_truth/answer", path, id)
		}
		if ac, ok := obj["all_choices"].([]any); ok {
			for _, x := range ac {
				it.AllChoices = append(it.AllChoices, fmt.Sprint(x))
			}
		}
		if ia, ok := obj["index2ans"].(map[string]any); ok {
			for k, v := range ia {
				it.Index2Ans[k] = fmt.Sprint(v)
			}
		}
		if ops, ok := obj["options"]; ok && len(it.Index2Ans) == 0 {
			var list []any
			switch o := ops.(type) {
			case []any:
				list = o
			case string: // MMMU's HF dataset stores options as a Python list literal
				var l []string
				if json.Unmarshal([]byte(strings.ReplaceAll(o, "'", "\"")), &l) == nil {
					for _, s := range l {
						list = append(list, s)
					}
				}
			}
			for i, x := range list {
				c := string(rune('A' + i))
				it.Index2Ans[c] = fmt.Sprint(x)
				if len(it.AllChoices) < len(list) {
					it.AllChoices = append(it.AllChoices, c)
				}
			}
		}
		refs.Items[id] = it
		return nil
	}
	switch v := raw.(type) {
	case map[string]any:
		for _, id := range sortedKeys(v) {
			obj, ok := v[id].(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: entry %s is not an object", path, id)
			}
			if err := add(id, obj); err != nil {
				return nil, err
			}
		}
	case []any:
		for i, e := range v {
			obj, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: element %d is not an object", path, i)
			}
			id, _ := obj["id"].(string)
			if id == "" {
				return nil, fmt.Errorf("%s: element %d has no \"id\"", path, i)
			}
			if err := add(id, obj); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("%s: expected a JSON object or list", path)
	}
	if len(refs.Items) == 0 {
		return nil, fmt.Errorf("%s: no questions", path)
	}
	return refs, nil
}

// MMMUCategory is the subject of an MMMU id: "validation_Art_Theory_12" -> "Art_Theory".
func MMMUCategory(id string) string {
	p := strings.Split(id, "_")
	if len(p) < 3 {
		return ""
	}
	return strings.Join(p[1:len(p)-1], "_")
}

// mmmuParser carries the random state of eval_utils.py (random.seed(42) once).
type mmmuParser struct{ rng *pyRandom }

func newMMMUParser() *mmmuParser { return &mmmuParser{rng: newPyRandom(42)} }

// parseMultiChoice is MMMU's parse_multi_choice_response.
func (p *mmmuParser) parseMultiChoice(response string, allChoices []string, index2ans map[string]string) string {
	for _, c := range []string{",", ".", "!", "?", ";", ":", "'"} {
		response = strings.Trim(response, c)
	}
	response = " " + response + " "
	indexAns, withBrack := true, false
	var cands []string
	for _, c := range allChoices {
		if strings.Contains(response, "("+c+")") {
			cands = append(cands, c)
			withBrack = true
		}
	}
	if len(cands) == 0 {
		for _, c := range allChoices {
			if strings.Contains(response, " "+c+" ") {
				cands = append(cands, c)
			}
		}
	}
	if len(cands) == 0 && len(pySplit(response)) > 5 {
		// dict order of index2ans: the order of all_choices (the dict is built that way)
		for _, c := range index2ansOrder(allChoices, index2ans) {
			if strings.Contains(pyLower(response), pyLower(index2ans[c])) {
				cands = append(cands, c)
				indexAns = false
			}
		}
	}
	switch {
	case len(cands) == 0:
		return allChoices[p.rng.below(len(allChoices))]
	case len(cands) == 1:
		return cands[0]
	}
	best, bestAt := 0, math.MinInt
	for i, c := range cands {
		var at int
		switch {
		case indexAns && withBrack:
			at = pyRFind(response, "("+c+")")
		case indexAns:
			at = pyRFind(response, " "+c+" ")
		default:
			at = pyRFind(pyLower(response), pyLower(index2ans[c]))
		}
		if at > bestAt { // np.argmax: first maximum
			best, bestAt = i, at
		}
	}
	return cands[best]
}

func index2ansOrder(all []string, m map[string]string) []string {
	var out []string
	for _, c := range all {
		if _, ok := m[c]; ok {
			out = append(out, c)
		}
	}
	for _, k := range sortedKeys(m) {
		if !containsStr(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// pyRFind is str.rfind in code points.
func pyRFind(s, sub string) int {
	i := strings.LastIndex(s, sub)
	if i < 0 {
		return -1
	}
	return len([]rune(s[:i]))
}

var (
	mmmuNumCommas = regexp.MustCompile(`-?\b\d{1,3}(?:,\d{3})+\b`)
	mmmuNumSci    = regexp.MustCompile(`-?\d+(?:\.\d+)?[eE][+-]?\d+`)
)

// mmmuSimpleNumbers is pattern_simple -?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d]) (Go's
// regexp has no lookahead, so the matches are found by hand with Python's backtracking order).
func mmmuSimpleNumbers(s string) []string {
	var out []string
	isD := func(i int) bool { return i < len(s) && s[i] >= '0' && s[i] <= '9' }
	isW := func(i int) bool { // Python's Unicode \w at byte i (or the rune ending at i when i is inside one)
		if i < 0 || i >= len(s) {
			return false
		}
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		r, _ := utf8.DecodeRuneInString(s[i:])
		return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r)
	}
	lookOK := func(e int) bool {
		if e < len(s) && (s[e] == ',' || isD(e)) {
			return false
		}
		if e < len(s) && (s[e] == 'e' || s[e] == 'E') {
			j := e + 1
			if j < len(s) && (s[j] == '+' || s[j] == '-') {
				j++
			}
			if isD(j) {
				return false
			}
		}
		return true
	}
	digitsEnd := func(i int) int {
		for isD(i) {
			i++
		}
		return i
	}
	for i := 0; i < len(s); {
		start := i
		j := i
		if s[j] == '-' {
			j++
		}
		var ends []int // alternatives in order, each with its backtracking choices (longest first)
		// \d+\.\d+
		if isD(j) {
			de := digitsEnd(j)
			for k := de; k > j; k-- {
				if k < len(s) && s[k] == '.' && isD(k+1) {
					fe := digitsEnd(k + 1)
					for f := fe; f > k+1; f-- {
						ends = append(ends, f)
					}
				}
			}
		}
		// \.\d+
		if j < len(s) && s[j] == '.' && isD(j+1) {
			fe := digitsEnd(j + 1)
			for f := fe; f > j+1; f-- {
				ends = append(ends, f)
			}
		}
		// \d+\b
		if isD(j) {
			de := digitsEnd(j)
			for k := de; k > j; k-- {
				if isW(k-1) != isW(k) {
					ends = append(ends, k)
				}
			}
		}
		matched := -1
		for _, e := range ends {
			if lookOK(e) {
				matched = e
				break
			}
		}
		if matched < 0 && s[start] == '-' {
			// the optional "-" can also be skipped; a match then starts at the next position anyway
			i++
			continue
		}
		if matched < 0 {
			i++
			continue
		}
		out = append(out, s[start:matched])
		i = matched
		if matched == start {
			i++
		}
	}
	return out
}

func mmmuExtractNumbers(s string) []string {
	out := append([]string{}, mmmuNumCommas.FindAllString(s, -1)...)
	out = append(out, mmmuNumSci.FindAllString(s, -1)...)
	return append(out, mmmuSimpleNumbers(s)...)
}

// mmmuNorm is normalize_str: a number becomes its float rounded to 2 decimals; other text is
// lower-cased, and a single character c becomes " c" and "c ".
type mmmuNorm struct {
	isNum bool
	num   float64
	str   string
}

func mmmuIsNumber(s string) (float64, bool) {
	t := strings.ReplaceAll(s, ",", "")
	t = pyStrip(t)
	t = strings.ReplaceAll(t, "_", "")
	if t == "" || strings.ContainsAny(t, "xXpP") {
		return 0, false
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return f, true
		}
		return 0, false
	}
	return f, true
}

func normalizeMMMU(s string) []mmmuNorm {
	s = pyStrip(s)
	if f, ok := mmmuIsNumber(s); ok {
		return []mmmuNorm{{isNum: true, num: pyRound2(f)}}
	}
	s = pyLower(s)
	if len([]rune(s)) == 1 {
		return []mmmuNorm{{str: " " + s}, {str: s + " "}}
	}
	return []mmmuNorm{{str: s}}
}

// pyRound2 is Python's round(x, 2) (correctly rounded, halves to even on the decimal value).
func pyRound2(x float64) float64 {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return x
	}
	s := strconv.FormatFloat(x, 'f', 2, 64) // exact decimal rounding, half-even on exact ties
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// parseOpen is MMMU's parse_open_response.
func parseOpen(response string) []mmmuNorm {
	resp := pyLower(strings.Trim(pyStrip(response), "."))
	// re.split(r'\.\s(?=[A-Z])|\n', ...) runs on the lower-cased text, where the lookahead for an
	// ASCII capital can never match: only newlines split.
	subs := strings.Split(resp, "\n")
	indicators := []string{"could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result "}
	var keys []string
	for i, r := range subs {
		if i == len(subs)-1 {
			indicators = append(indicators, "=")
		}
		shortest := ""
		for _, ind := range indicators {
			if strings.Contains(r, ind) {
				parts := strings.Split(r, ind)
				tail := pyStrip(parts[len(parts)-1])
				// Python: `if not shortest` treats None and "" alike
				if shortest == "" || len([]rune(tail)) < len([]rune(shortest)) {
					shortest = tail
				}
			}
		}
		if shortest != "" && !containsStr([]string{":", ",", ".", "!", "?", ";", "'"}, pyStrip(shortest)) {
			keys = append(keys, shortest)
		}
	}
	if len(keys) == 0 {
		keys = []string{resp}
	}
	preds := append([]string{}, keys...)
	for _, k := range keys {
		preds = append(preds, mmmuExtractNumbers(k)...)
	}
	var out []mmmuNorm
	for _, p := range preds {
		out = append(out, normalizeMMMU(p)...)
	}
	return out
}

// evalOpen is MMMU's eval_open: a string prediction is right if it contains a normalised string
// answer; a number prediction if it equals a normalised number answer.
func evalOpen(gold []string, preds []mmmuNorm) bool {
	var norms []mmmuNorm
	for _, g := range gold {
		norms = append(norms, normalizeMMMU(g)...)
	}
	for _, p := range preds {
		for _, n := range norms {
			if !p.isNum && !n.isNum && strings.Contains(p.str, n.str) {
				return true
			}
			if p.isNum && n.isNum && p.num == n.num {
				return true
			}
		}
	}
	return false
}

// ScoreMMMU scores MMMU as main_eval_only.py: multiple-choice answers are parsed with
// parse_multi_choice_response when the reference knows the choices (otherwise the text must
// already be the letter, as TinyLLaVA's generator writes it) and compared with the ground truth;
// open answers go through parse_open_response and eval_open. Only the 30 MMMU subjects count.
// Keys: accuracy, then per domain "domain/<name>" and per subject "subject/<name>" (percent).
func ScoreMMMU(answers []Answer, refs *MMMURefs) (*Metrics, error) {
	p := newMMMUParser()
	type res struct{ right, n int }
	bycat := map[string]*res{}
	seen := map[string]bool{}
	for _, a := range answers {
		it, ok := refs.Items[a.QuestionID]
		if !ok {
			return nil, lineError(a.File, a.Line, "MMMU id %s is not in %s", a.QuestionID, refs.Path)
		}
		if seen[a.QuestionID] {
			return nil, lineError(a.File, a.Line, "MMMU id %s answered twice", a.QuestionID)
		}
		seen[a.QuestionID] = true
		cat := MMMUCategory(a.QuestionID)
		right := false
		if it.QuestionType == "multiple-choice" {
			pred := a.Text
			if len(it.AllChoices) > 0 {
				pred = p.parseMultiChoice(a.Text, it.AllChoices, it.Index2Ans)
			}
			right = containsStr(it.GroundTruth, pred)
		} else {
			right = evalOpen(it.GroundTruth, parseOpen(a.Text))
		}
		r := bycat[cat]
		if r == nil {
			r = &res{}
			bycat[cat] = r
		}
		r.n++
		if right {
			r.right++
		}
	}
	m := NewMetrics("mmmu")
	tr, tn := 0, 0
	for _, d := range mmmuDomains {
		for _, c := range d.Cats {
			if r := bycat[c]; r != nil {
				tr += r.right
				tn += r.n
			}
		}
	}
	if tn == 0 {
		return nil, fmt.Errorf("mmmu: no answer belongs to an MMMU subject (ids like validation_Art_12)")
	}
	m.Set("accuracy", float64(tr)/float64(tn)*100)
	for _, d := range mmmuDomains {
		dr, dn := 0, 0
		for _, c := range d.Cats {
			if r := bycat[c]; r != nil {
				dr += r.right
				dn += r.n
			}
		}
		if dn > 0 {
			m.Set("domain/"+d.Name, float64(dr)/float64(dn)*100)
		}
	}
	for _, d := range mmmuDomains {
		for _, c := range d.Cats {
			if r := bycat[c]; r != nil {
				m.Set("subject/"+c, float64(r.right)/float64(r.n)*100)
			}
		}
	}
	m.Set("count", float64(tn))
	return m, nil
}
