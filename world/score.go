package world

import (
	"regexp"
	"strings"
	"unicode"
)

// QA is what scoring needs of a sample: its type, POPE split (exist only)
// and gold answer.
type QA struct {
	ID, Type, PopeSplit, Answer string
}

var numberWords = map[string]string{
	"zero": "0", "none": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
	"six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}

var articles = map[string]bool{"a": true, "an": true, "the": true}

// Normalize prepares a short answer for exact matching, VQA style:
// lowercase, punctuation to spaces, whitespace collapsed and trimmed, number
// words to digits ("two" -> "2", "none" -> "0"), and the articles a/an/the
// dropped when other words remain (so the letter answer "A" survives).
func Normalize(answer string) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return unicode.ToLower(r)
		}
		return ' '
	}, answer)
	words := strings.Fields(s)
	for i, w := range words {
		if d, ok := numberWords[w]; ok {
			words[i] = d
		}
	}
	if len(words) > 1 {
		kept := words[:0]
		for _, w := range words {
			if !articles[w] {
				kept = append(kept, w)
			}
		}
		if len(kept) > 0 {
			words = kept
		}
	}
	return strings.Join(words, " ")
}

// ParseYesNo reads a yes/no answer the way POPE's evaluation does: keep the
// first sentence (up to the first '.'), drop commas, split on spaces; if a
// word is "no" or "not" (case-insensitive, surrounding punctuation ignored)
// the answer is "no", otherwise "yes" (even for an empty prediction).
func ParseYesNo(pred string) string {
	if i := strings.IndexByte(pred, '.'); i >= 0 {
		pred = pred[:i]
	}
	pred = strings.ReplaceAll(pred, ",", "")
	for _, w := range strings.Fields(pred) {
		w = strings.ToLower(strings.TrimFunc(w, func(r rune) bool { return !unicode.IsLetter(r) }))
		if w == "no" || w == "not" {
			return "no"
		}
	}
	return "yes"
}

var (
	reLetterAlone  = regexp.MustCompile(`^\(?([A-Da-d])\)?[.:)]?$`)
	reLetterLead   = regexp.MustCompile(`^\(?([A-D])[).:]\s`)
	reLetterAnswer = regexp.MustCompile(`(?i)answer(?: is|:)\s*:?\s*\(?([A-D])\b`)
	reLetterToken  = regexp.MustCompile(`\b([A-D])\b`)
)

// ParseLetter extracts a multiple-choice letter (A-D) from a prediction:
// "A", "a", "A.", "(A)", "A. red", "The answer is A", "Answer: (B)", or else
// the only distinct capital A-D standing alone as a word. "" if none is
// found or the prediction names several.
func ParseLetter(pred string) string {
	s := strings.TrimSpace(pred)
	if m := reLetterAlone.FindStringSubmatch(s); m != nil {
		return strings.ToUpper(m[1])
	}
	if m := reLetterLead.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	if m := reLetterAnswer.FindStringSubmatch(s); m != nil {
		return strings.ToUpper(m[1])
	}
	found := ""
	for _, m := range reLetterToken.FindAllStringSubmatch(s, -1) {
		if found != "" && found != m[1] {
			return ""
		}
		found = m[1]
	}
	return found
}

// IsYesNo reports whether a QA is scored as a yes/no question.
func IsYesNo(qa QA) bool {
	if qa.Type == TypeMC {
		return false
	}
	a := Normalize(qa.Answer)
	return a == "yes" || a == "no"
}

// Correct scores one prediction, benchmark style: multiple choice by the
// parsed letter, yes/no by POPE parsing, everything else by exact match
// after Normalize.
func Correct(qa QA, prediction string) bool {
	switch {
	case qa.Type == TypeMC:
		l := ParseLetter(prediction)
		return l != "" && l == strings.ToUpper(strings.TrimSpace(qa.Answer))
	case IsYesNo(qa):
		return ParseYesNo(prediction) == Normalize(qa.Answer)
	default:
		return Normalize(prediction) == Normalize(qa.Answer)
	}
}

// Score tallies one group of predictions. The confusion counts cover its
// yes/no questions only, with "yes" as the positive class (POPE's F1).
type Score struct {
	N, Correct     int
	TP, FP, TN, FN int
}

// Accuracy is Correct / N (0 when empty).
func (s Score) Accuracy() float64 {
	if s.N == 0 {
		return 0
	}
	return float64(s.Correct) / float64(s.N)
}

// F1 is POPE's F1 over the yes/no questions, "yes" positive.
func (s Score) F1() float64 {
	if 2*s.TP+s.FP+s.FN == 0 {
		return 0
	}
	return 2 * float64(s.TP) / float64(2*s.TP+s.FP+s.FN)
}

// YesRatio is the share of "yes" predictions among the yes/no questions.
func (s Score) YesRatio() float64 {
	n := s.TP + s.FP + s.TN + s.FN
	if n == 0 {
		return 0
	}
	return float64(s.TP+s.FP) / float64(n)
}

// Evaluate scores predictions (preds[i] answers qas[i]) per question type,
// per POPE split ("exist/random", "exist/popular", "exist/adversarial") and
// over everything ("all").
func Evaluate(qas []QA, preds []string) map[string]Score {
	out := map[string]Score{}
	for i, qa := range qas {
		pred := ""
		if i < len(preds) {
			pred = preds[i]
		}
		ok := Correct(qa, pred)
		keys := []string{qa.Type, "all"}
		if qa.PopeSplit != "" {
			keys = append(keys, qa.Type+"/"+qa.PopeSplit)
		}
		for _, k := range keys {
			s := out[k]
			s.N++
			if ok {
				s.Correct++
			}
			if IsYesNo(qa) {
				gold, got := Normalize(qa.Answer) == "yes", ParseYesNo(pred) == "yes"
				switch {
				case gold && got:
					s.TP++
				case !gold && got:
					s.FP++
				case !gold && !got:
					s.TN++
				default:
					s.FN++
				}
			}
			out[k] = s
		}
	}
	return out
}

// majority returns each key's most frequent answer (ties: the smallest).
func majority(samples []Sample, key func(Sample) string) map[string]string {
	counts := map[string]map[string]int{}
	for _, s := range samples {
		k := key(s)
		if counts[k] == nil {
			counts[k] = map[string]int{}
		}
		counts[k][s.Answer()]++
	}
	out := map[string]string{}
	for k, c := range counts {
		best, bestN := "", -1
		for a, n := range c {
			if n > bestN || (n == bestN && a < best) {
				best, bestN = a, n
			}
		}
		out[k] = best
	}
	return out
}

// BlindBaseline is the accuracy per question type (and "all") of always
// answering the most frequent answer of the question's template, measured on
// the same samples: what a model that ignores the image and only recognises
// the template can score.
func BlindBaseline(samples []Sample) map[string]float64 {
	maj := majority(samples, func(s Sample) string { return s.Template })
	return accuracyBy(samples, func(s Sample) string { return maj[s.Template] })
}

// BlindQuestionBaseline fits the most frequent answer per exact question
// text on train (falling back to the template's most frequent answer for
// questions unseen in train) and scores it on eval, per type and "all": a
// text-only model that memorised the training questions.
func BlindQuestionBaseline(train, eval []Sample) map[string]float64 {
	byQ := majority(train, func(s Sample) string { return s.Question() })
	byT := majority(train, func(s Sample) string { return s.Template })
	return accuracyBy(eval, func(s Sample) string {
		if a, ok := byQ[s.Question()]; ok {
			return a
		}
		return byT[s.Template]
	})
}

func accuracyBy(samples []Sample, predict func(Sample) string) map[string]float64 {
	qas := make([]QA, len(samples))
	preds := make([]string, len(samples))
	for i, s := range samples {
		qas[i], preds[i] = s.QA(), predict(s)
	}
	out := map[string]float64{}
	for k, sc := range Evaluate(qas, preds) {
		out[k] = sc.Accuracy()
	}
	return out
}
