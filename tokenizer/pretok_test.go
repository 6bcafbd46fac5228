package tokenizer

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// allRunes returns every Unicode scalar value except the surrogates.
func allRunes() []rune {
	rs := make([]rune, 0, 0x110000)
	for r := rune(0); r <= unicode.MaxRune; r++ {
		// Planes 4-13 are unassigned and planes 15-16 private use: nothing there is \s, L or N.
		if (r >= 0xD800 && r <= 0xDFFF) || (r >= 0x40000 && r < 0xE0000) || r >= 0xF0000 {
			continue
		}
		rs = append(rs, r)
	}
	return rs
}

// TestRegexp2Classes checks, over all of Unicode, that regexp2 (as compileRegex configures it)
// gives \s, \p{L} and \p{N} the Oniguruma meaning the hand-written matchers use: White_Space,
// the L categories and the N categories, from Go's Unicode tables.
func TestRegexp2Classes(t *testing.T) {
	rs := allRunes()
	s := string(rs)
	for _, c := range []struct {
		class string
		want  func(rune) bool
	}{
		{`\s`, func(r rune) bool { return unicode.Is(unicode.White_Space, r) }},
		{`\p{L}`, func(r rune) bool { return unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Lm, unicode.Lo) }},
		{`\p{N}`, func(r rune) bool { return unicode.In(r, unicode.Nd, unicode.Nl, unicode.No) }},
		{`[^\s\p{L}\p{N}]`, func(r rune) bool {
			return !unicode.Is(unicode.White_Space, r) && !unicode.IsLetter(r) && !unicode.IsNumber(r)
		}},
	} {
		re, err := compileRegex(c.class + "+")
		if err != nil {
			t.Fatal(err)
		}
		// Map byte offsets back to rune indices.
		runeIdx := make(map[int]int, len(rs)+1)
		b := 0
		for i, r := range rs {
			runeIdx[b] = i
			b += utf8.RuneLen(r)
		}
		runeIdx[b] = len(rs)
		got := make([]bool, len(rs))
		for _, sp := range (regexMatcher{re}).find(s, nil) {
			for i := runeIdx[sp[0]]; i < runeIdx[sp[1]]; i++ {
				got[i] = true
			}
		}
		bad := 0
		for i, r := range rs {
			if got[i] != c.want(r) {
				if bad < 5 {
					t.Errorf("regexp2 %s on U+%04X: %v, want %v", c.class, r, got[i], c.want(r))
				}
				bad++
			}
			// The hand-written predicates must agree too.
			var mine bool
			switch c.class {
			case `\s`:
				mine = isSpace(r)
			case `\p{L}`:
				mine = isLetter(r)
			case `\p{N}`:
				mine = isNumber(r)
			default:
				mine = isOther(r)
			}
			if mine != c.want(r) {
				t.Fatalf("predicate for %s on U+%04X: %v", c.class, r, mine)
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d code points differ", c.class, bad)
		}
	}
	// Spot checks against the Unicode standard itself, independent of Go's tables.
	for r, want := range map[rune]bool{' ': true, '\t': true, '\v': true, '\f': true, 0x85: true, 0xA0: true,
		0x1680: true, 0x2007: true, 0x2028: true, 0x2029: true, 0x202F: true, 0x205F: true, 0x3000: true,
		0x180E: false, 0x200B: false, 0xFEFF: false, 0x1C: false} {
		if isSpace(r) != want {
			t.Errorf("isSpace(U+%04X) = %v, want %v", r, !want, want)
		}
	}
}

// fuzzAlphabet mixes every character class the split regexes distinguish.
var fuzzAlphabet = []rune("aAsStTrReEvVmMlLdDkKxé中ſKßİ'''' \t\n\r\v\f\u0085\u00a0\u1680\u2000\u2028\u2029\u3000\ufeff\u200b\u180e" +
	"0123١Ⅻ½²\u0301\u0903😀\ufe0f\U0001F3FB.!-_“’\x00\x1c\ue000\u0378")

func randomText(rng *rand.Rand, n int) string {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		r := fuzzAlphabet[rng.Intn(len(fuzzAlphabet))]
		// Bias towards runs and the characters that trigger alternatives.
		switch rng.Intn(6) {
		case 0:
			sb.WriteString(strings.Repeat(string(r), 1+rng.Intn(4)))
		case 1:
			sb.WriteString([]string{"'s", "'LL", "'ſ", "'Re", "'vE", "'d", " '", "\r\n", "  \n", " \n ", "'t"}[rng.Intn(11)])
		default:
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

// TestFastMatchersMatchRegexp2 checks that the hand-written Qwen2 and GPT-2 matchers find
// exactly the spans regexp2 finds for the original patterns.
func TestFastMatchersMatchRegexp2(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, c := range []struct {
		name    string
		pattern string
		fast    matcher
	}{{"qwen", QwenPattern, qwenMatcher{}}, {"gpt2", GPT2Pattern, gpt2Matcher{}}} {
		re, err := compileRegex(c.pattern)
		if err != nil {
			t.Fatal(err)
		}
		slow := regexMatcher{re}
		for i := 0; i < 20000; i++ {
			s := randomText(rng, 1+rng.Intn(24))
			got, want := c.fast.find(s, nil), slow.find(s, nil)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s on %q:\nfast    %v\nregexp2 %v", c.name, s, pieces(s, got), pieces(s, want))
			}
		}
	}
}

func FuzzQwenMatcher(f *testing.F) {
	f.Add("Hello world's 123 \r\n  x")
	f.Add("'S'ſ\u3000\u0085\n")
	re, err := compileRegex(QwenPattern)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		s = validUTF8(s)
		got, want := (qwenMatcher{}).find(s, nil), (regexMatcher{re}).find(s, nil)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: fast %v regexp2 %v", s, pieces(s, got), pieces(s, want))
		}
	})
}

func pieces(s string, spans [][2]int) []string {
	var out []string
	for _, sp := range spans {
		out = append(out, s[sp[0]:sp[1]])
	}
	return out
}

// TestQwenPieces pins hand-checked pre-tokenisations of the Qwen2 pattern.
func TestQwenPieces(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"Hello world", []string{"Hello", " world"}},
		{"it'S I'LL", []string{"it", "'S", " I", "'LL"}},
		{"x'ſ", []string{"x", "'ſ"}},                 // Unicode case folding: ſ folds to s
		{"１２３", []string{"１", "２", "３"}},             // fullwidth digits are \p{N}, one per piece
		{"Ⅻ½٣", []string{"Ⅻ", "½", "٣"}},             // Nl, No, Nd
		{"a  \n\n b", []string{"a", "  \n\n", " b"}}, // \s*[\r\n]+ then the space joins the word
		{"x   y", []string{"x", "  ", " y"}},         // \s+(?!\S) leaves one space for the word
		{"x\u3000\u3000y", []string{"x", "\u3000", "\u3000y"}},
		{"end   ", []string{"end", "   "}},
		{"a\r\n\tb", []string{"a", "\r\n", "\tb"}},
		{" ...\n\nx", []string{" ...\n\n", "x"}},
		{"\ufeffword", []string{"\ufeffword"}}, // U+FEFF is not White_Space, so it prefixes the letters
		{"\u0085word", []string{"\u0085word"}}, // U+0085 is White_Space: [^\r\n...] allows it
		{"e\u0301", []string{"e", "\u0301"}},   // a combining mark is neither \p{L} nor \p{N}
		{"\u0301e", []string{"\u0301e"}},
	} {
		if got := pieces(c.in, (qwenMatcher{}).find(c.in, nil)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}

// TestMatchersAgainstPythonRegex compares both split patterns with the cuts the Python
// `regex` module made (testdata/gen_pretok.py): an engine independent of regexp2 and of the
// hand-written matchers.
func TestMatchersAgainstPythonRegex(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "pretok_regex.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	n, bad := 0, 0
	for sc.Scan() {
		var rec struct {
			Text string   `json:"text"`
			Qwen []string `json:"qwen"`
			GPT2 []string `json:"gpt2"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		n++
		for _, c := range []struct {
			name string
			m    matcher
			want []string
		}{{"qwen", qwenMatcher{}, rec.Qwen}, {"gpt2", gpt2Matcher{}, rec.GPT2}} {
			if got := pieces(rec.Text, c.m.find(rec.Text, nil)); !reflect.DeepEqual(got, c.want) {
				if bad++; bad <= 10 {
					t.Errorf("%s on %+q:\n got %+q\nwant %+q", c.name, rec.Text, got, c.want)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 4000 {
		t.Fatalf("read %d records, want 4000", n)
	}
	if bad > 0 {
		t.Errorf("%d mismatches", bad)
	}
}
