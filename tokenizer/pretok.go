package tokenizer

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// The two split regexes that byte-level BPE tokenizers use in practice.
const (
	// QwenPattern is the Split regex of Qwen2 / Qwen2.5 tokenizer.json files.
	QwenPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// GPT2Pattern is the regex of the ByteLevel pre-tokenizer when use_regex is true.
	GPT2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
)

// matcher finds the non-overlapping, leftmost-first matches of a pattern in s and returns
// their byte spans in order.
type matcher interface {
	find(s string, dst [][2]int) [][2]int
}

// Character classes, with the meaning Oniguruma (Hugging Face tokenizers' regex engine) gives
// them on UTF-8 text: \s is Unicode White_Space, \p{L} the letters, \p{N} the numbers.
func isSpace(r rune) bool {
	if r < 0x80 {
		return r == ' ' || (r >= '\t' && r <= '\r')
	}
	return unicode.Is(unicode.White_Space, r)
}

func isLetter(r rune) bool {
	if r < 0x80 {
		return (r|0x20) >= 'a' && (r|0x20) <= 'z'
	}
	return unicode.IsLetter(r)
}

func isNumber(r rune) bool {
	if r < 0x80 {
		return r >= '0' && r <= '9'
	}
	return unicode.IsNumber(r)
}

// isOther is [^\s\p{L}\p{N}].
func isOther(r rune) bool { return !isSpace(r) && !isLetter(r) && !isNumber(r) }

func runeAt(s string, i int) (rune, int) {
	if i >= len(s) {
		return -1, 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// spaceRunEnd returns the end of the run of \s characters starting at i.
func spaceRunEnd(s string, i int) int {
	for i < len(s) {
		r, n := runeAt(s, i)
		if !isSpace(r) {
			break
		}
		i += n
	}
	return i
}

// trailingSpaceSplit handles `\s+(?!\S)|\s+` at i, where s[i] is \s: the whole run when it
// ends the text or is one character long, else the run minus its last character.
func trailingSpaceSplit(s string, i int) int {
	k := spaceRunEnd(s, i)
	if k == len(s) {
		return k
	}
	_, n := utf8.DecodeLastRuneInString(s[:k])
	if k-n > i {
		return k - n
	}
	return k
}

// contraction matches 's|'t|'re|'ve|'m|'ll|'d at i (s[i] == '\”). With fold, the letters
// match case-insensitively under Unicode simple case folding, as Oniguruma's (?i:...) does:
// besides the ASCII upper case this lets 's match U+017F LATIN SMALL LETTER LONG S.
func contraction(s string, i int, fold bool) int {
	eq := func(j int, c byte) (int, bool) {
		r, n := runeAt(s, j)
		if r == rune(c) {
			return n, true
		}
		if fold {
			if r == rune(c-'a'+'A') || (c == 's' && r == 0x017F) {
				return n, true
			}
		}
		return 0, false
	}
	j := i + 1
	for _, alt := range [...]string{"s", "t", "re", "ve", "m", "ll", "d"} {
		k, ok := j, true
		for a := 0; a < len(alt); a++ {
			n, m := eq(k, alt[a])
			if !m {
				ok = false
				break
			}
			k += n
		}
		if ok {
			return k
		}
	}
	return -1
}

// streamMatcher is a matcher whose pattern matches at every position (its matches tile the
// text); next returns the end of the match starting at i.
type streamMatcher interface {
	matcher
	next(s string, i int) int
}

func (qwenMatcher) next(s string, i int) int { return qwenNext(s, i) }
func (gpt2Matcher) next(s string, i int) int { return gpt2Next(s, i) }

// qwenMatcher is a hand-written equivalent of QwenPattern (checked against regexp2 in tests).
type qwenMatcher struct{}

func (qwenMatcher) find(s string, dst [][2]int) [][2]int {
	for i := 0; i < len(s); {
		e := qwenNext(s, i)
		dst = append(dst, [2]int{i, e})
		i = e
	}
	return dst
}

func qwenNext(s string, i int) int {
	r, n := runeAt(s, i)
	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if r == '\'' {
		if e := contraction(s, i, true); e >= 0 {
			return e
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	j := i
	if !isLetter(r) && r != '\r' && r != '\n' && !isNumber(r) {
		j = i + n
	}
	if r2, n2 := runeAt(s, j); isLetter(r2) {
		j += n2
		for j < len(s) {
			r3, n3 := runeAt(s, j)
			if !isLetter(r3) {
				break
			}
			j += n3
		}
		return j
	}
	// \p{N}
	if isNumber(r) {
		return i + n
	}
	// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
	j = i
	if r == ' ' {
		if r2, _ := runeAt(s, i+1); r2 >= 0 && isOther(r2) {
			j = i + 1
		}
	}
	if r2, _ := runeAt(s, j); r2 >= 0 && isOther(r2) {
		for j < len(s) {
			r3, n3 := runeAt(s, j)
			if !isOther(r3) {
				break
			}
			j += n3
		}
		for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
			j++
		}
		return j
	}
	// Only \s is left: r is White_Space.
	// \s*[\r\n]+ : up to the last \r or \n of the whitespace run.
	k := spaceRunEnd(s, i)
	if last := strings.LastIndexAny(s[i:k], "\r\n"); last >= 0 {
		return i + last + 1
	}
	// \s+(?!\S)|\s+
	return trailingSpaceSplit(s, i)
}

// gpt2Matcher is a hand-written equivalent of GPT2Pattern (checked against regexp2 in tests).
type gpt2Matcher struct{}

func (gpt2Matcher) find(s string, dst [][2]int) [][2]int {
	for i := 0; i < len(s); {
		e := gpt2Next(s, i)
		dst = append(dst, [2]int{i, e})
		i = e
	}
	return dst
}

func gpt2Next(s string, i int) int {
	r, n := runeAt(s, i)
	if r == '\'' {
		if e := contraction(s, i, false); e >= 0 {
			return e
		}
	}
	// ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
	j, c := i, r
	if r == ' ' {
		if r2, n2 := runeAt(s, i+1); r2 >= 0 && !isSpace(r2) {
			j, c = i+1, r2
			_ = n2
		}
	}
	if !isSpace(c) {
		class := func(x rune) int {
			switch {
			case isLetter(x):
				return 1
			case isNumber(x):
				return 2
			case isSpace(x):
				return 0
			}
			return 3
		}
		want := class(c)
		for j < len(s) {
			r3, n3 := runeAt(s, j)
			if class(r3) != want {
				break
			}
			j += n3
		}
		return j
	}
	_ = n
	return trailingSpaceSplit(s, i)
}

// regexMatcher runs an arbitrary pattern with regexp2 (a backtracking engine that, like
// Oniguruma, supports look-ahead). regexp2 works on runes; the spans are converted to bytes.
type regexMatcher struct{ re *regexp2.Regexp }

func (m regexMatcher) find(s string, dst [][2]int) [][2]int {
	runes := []rune(s)
	// Byte offset of each rune index (s is valid UTF-8 here).
	offs := make([]int, len(runes)+1)
	b := 0
	for k, r := range runes {
		offs[k] = b
		b += utf8.RuneLen(r)
	}
	offs[len(runes)] = b
	mt, err := m.re.FindRunesMatch(runes)
	for err == nil && mt != nil {
		dst = append(dst, [2]int{offs[mt.Index], offs[mt.Index+mt.Length]})
		mt, err = m.re.FindNextMatch(mt)
	}
	return dst
}

// literalMatcher finds a fixed string (Split with a String pattern).
type literalMatcher struct{ lit string }

func (m literalMatcher) find(s string, dst [][2]int) [][2]int {
	if m.lit == "" {
		return dst
	}
	for off := 0; ; {
		k := strings.Index(s[off:], m.lit)
		if k < 0 {
			return dst
		}
		dst = append(dst, [2]int{off + k, off + k + len(m.lit)})
		off += k + len(m.lit)
	}
}

// compileRegex compiles a tokenizer.json regex for regexp2. The pattern's Oniguruma meaning
// is kept: regexp2's default (.NET) syntax already gives \s = White_Space and \p{L}, \p{N}
// from Go's Unicode tables; (?i:...) groups of plain letters are expanded into explicit
// case-folded classes so the result does not depend on regexp2's case-insensitive rules.
func compileRegex(pattern string) (*regexp2.Regexp, error) {
	re, err := regexp2.Compile(expandCaseInsensitive(pattern), regexp2.None)
	if err != nil {
		return nil, err
	}
	re.MatchTimeout = regexp2.DefaultMatchTimeout
	return re, nil
}

var ciGroup = regexp.MustCompile(`\(\?i:([A-Za-z'|]*)\)`)

func expandCaseInsensitive(p string) string {
	return ciGroup.ReplaceAllStringFunc(p, func(g string) string {
		body := g[4 : len(g)-1]
		var sb strings.Builder
		sb.WriteString("(?:")
		for _, c := range body {
			switch {
			case c == 's' || c == 'S':
				sb.WriteString("[sS\u017F]")
			case c == 'k' || c == 'K':
				sb.WriteString("[kK\u212A]")
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
				fmt.Fprintf(&sb, "[%c%c]", unicode.ToLower(c), unicode.ToUpper(c))
			default:
				sb.WriteRune(c)
			}
		}
		sb.WriteString(")")
		return sb.String()
	})
}

// newMatcher returns the matcher for a regex pattern: the hand-written fast path for the two
// well-known patterns, regexp2 otherwise.
func newMatcher(pattern string) (matcher, error) {
	switch pattern {
	case QwenPattern:
		return qwenMatcher{}, nil
	case GPT2Pattern:
		return gpt2Matcher{}, nil
	}
	re, err := compileRegex(pattern)
	if err != nil {
		return nil, err
	}
	return regexMatcher{re}, nil
}
