package eval

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Normalisation of short answers exactly as the EvalAI / VQA answer processor (m4c_evaluator's
// EvalAIAnswerProcessor in LLaVA and TinyLLaVA) does it, including its quirks:
//   - commas and question marks are deleted and "'s" becomes " 's" before anything else;
//   - each punctuation mark is deleted when it touches a space anywhere in the text (or when a
//     comma sits between digits), otherwise replaced by a space;
//   - a period not followed by a digit is deleted, but only the first 32 of them (the original
//     passes re.UNICODE where re.sub expects its count);
//   - number words zero..ten and "none" become digits, articles are dropped, and a fixed table
//     restores apostrophes in contractions ("dont" -> "don't").

var contractions = map[string]string{
	"aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
	"couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
	"dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
	"hasnt": "hasn't", "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
	"hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've",
	"I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've",
	"it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
	"mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
	"mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
	"oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
	"'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've",
	"she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
	"shouldn'tve": "shouldn't've", "somebody'd": "somebodyd", "somebodyd've": "somebody'd've",
	"somebody'dve": "somebody'd've", "somebodyll": "somebody'll", "somebodys": "somebody's",
	"someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
	"someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
	"somethingd've": "something'd've", "something'dve": "something'd've",
	"somethingll": "something'll", "thats": "that's", "thered": "there'd",
	"thered've": "there'd've", "there'dve": "there'd've", "therere": "there're", "theres": "there's",
	"theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll",
	"theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
	"wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't",
	"whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've",
	"whens": "when's", "whered": "where'd", "wheres": "where's", "whereve": "where've",
	"whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll",
	"whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's",
	"wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
	"wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
	"yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
	"youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll",
	"youre": "you're", "youve": "you've",
}

var numberWords = map[string]string{
	"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
	"six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}

var punctuationMarks = []string{";", "/", "[", "]", "\"", "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"}

// hasCommaBetweenDigits reports a match of (?<=\d)(,)+(?=\d).
func hasCommaBetweenDigits(s string) bool {
	var prev rune = -1
	for i, r := range s {
		if r == ',' && prev >= 0 && unicode.IsDigit(prev) {
			j := i
			for j < len(s) && s[j] == ',' {
				j++
			}
			if j < len(s) {
				if nr, _ := utf8.DecodeRuneInString(s[j:]); unicode.IsDigit(nr) {
					return true
				}
			}
		}
		prev = r
	}
	return false
}

// stripPeriods deletes up to 32 periods that are not followed by a digit (left to right).
func stripPeriods(s string) string {
	var b strings.Builder
	removed := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' && removed < 32 {
			followedByDigit := false
			if i+1 < len(s) {
				if nr, _ := utf8.DecodeRuneInString(s[i+1:]); unicode.IsDigit(nr) {
					followedByDigit = true
				}
			}
			if !followedByDigit {
				removed++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func processPunctuation(in string) string {
	out := in
	commaDigits := hasCommaBetweenDigits(in)
	for _, p := range punctuationMarks {
		if strings.Contains(in, p+" ") || strings.Contains(in, " "+p) || commaDigits {
			out = strings.ReplaceAll(out, p, "")
		} else {
			out = strings.ReplaceAll(out, p, " ")
		}
	}
	return stripPeriods(out)
}

func processDigitArticle(in string) string {
	words := pySplit(pyLower(in))
	out := words[:0]
	for _, w := range words {
		if d, ok := numberWords[w]; ok {
			w = d
		}
		if w == "a" || w == "an" || w == "the" {
			continue
		}
		out = append(out, w)
	}
	for i, w := range out {
		if c, ok := contractions[w]; ok {
			out[i] = c
		}
	}
	return strings.Join(out, " ")
}

// NormalizeVQAAnswer applies the EvalAI answer processor to one answer.
func NormalizeVQAAnswer(s string) string {
	s = pyLower(s)
	s = strings.ReplaceAll(s, ",", "")
	s = strings.ReplaceAll(s, "?", "")
	s = strings.ReplaceAll(s, "'s", " 's")
	s = pyStrip(s)
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "\t", " ")
	s = pyStrip(s)
	s = processPunctuation(s)
	return processDigitArticle(s)
}

// VQASoftScore is the VQA soft accuracy of pred against the human answers, as m4c's
// TextVQAAccuracyEvaluator computes it: both sides normalised, then the mean over the
// leave-one-out subsets (each human answer left out in turn) of min(1, matches/3).
func VQASoftScore(pred string, gt []string) float64 {
	p := NormalizeVQAAnswer(pred)
	norm := make([]string, len(gt))
	for i, g := range gt {
		norm[i] = NormalizeVQAAnswer(g)
	}
	return softScoreNormalized(p, norm)
}

func softScoreNormalized(p string, norm []string) float64 {
	if len(norm) == 0 {
		return 0
	}
	total := 0
	for _, g := range norm {
		if g == p {
			total++
		}
	}
	if total == 0 {
		return 0
	}
	sum := 0.0
	for _, g := range norm {
		m := total
		if g == p {
			m--
		}
		acc := float64(m) / 3
		if acc > 1 {
			acc = 1
		}
		sum += acc
	}
	return sum / float64(len(norm))
}
