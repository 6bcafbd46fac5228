package tokenizer

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/text/unicode/norm"
)

// TestLossyUTF8 checks U+FFFD substitution against Python's bytes.decode("utf-8", "replace")
// (the same "maximal subpart" rule as Rust's String::from_utf8_lossy); outputs recorded from
// Python 3.
func TestLossyUTF8(t *testing.T) {
	for in, want := range map[string]string{
		"a\xffb":               "a\uFFFDb",
		"\xe2\x82":             "\uFFFD",
		"\xe2\x82a":            "\uFFFDa",
		"\xf0\x9f\x98":         "\uFFFD",
		"\xed\xa0\x80":         "\uFFFD\uFFFD\uFFFD",
		"\xc0\xaf":             "\uFFFD\uFFFD",
		"\xf4\x90\x80\x80":     "\uFFFD\uFFFD\uFFFD\uFFFD",
		"\xe0\x80\x80":         "\uFFFD\uFFFD\uFFFD",
		"\xf0\x9f\x98\x80\x80": "😀\uFFFD",
		"\xf8\x88\x80\x80\x80": "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD",
		"valid é 中 😀":          "valid é 中 😀",
	} {
		if got := lossyUTF8([]byte(in)); got != want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAddedTokenSplitting replays the splitting scenarios of Hugging Face's own
// added_vocabulary.rs unit tests (single_word, lstrip, rstrip), with the lower-casing
// normaliser of those tests left out (the inputs below are already what it would see).
func TestAddedTokenSplitting(t *testing.T) {
	type seg struct {
		text string
		id   int
	}
	mk := func(toks ...AddedToken) *Tokenizer {
		vocab := map[string]int{}
		for b := 0; b < 256; b++ {
			vocab[byteToStr[b]] = b
		}
		for i := range toks {
			toks[i].ID = 1000 + i
		}
		tk, err := New(vocab, nil, toks, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	spans := func(tk *Tokenizer, s string) []seg {
		var out []seg
		for _, sp := range tk.rawAdded.find(s) {
			out = append(out, seg{s[sp.start:sp.stop], sp.id})
		}
		return out
	}

	mask := AddedToken{Content: "<mask>", SingleWord: true}
	tk := mk(mask)
	if got, want := spans(tk, "<mask> My name <mask> A<mask> <mask>ony <mask>"), []seg{
		{"<mask>", 1000}, {" My name ", -1}, {"<mask>", 1000}, {" A<mask> <mask>ony ", -1}, {"<mask>", 1000},
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("single_word:\n got %v\nwant %v", got, want)
	}
	// A combining mark counts as a word character; punctuation does not.
	if got, want := spans(tk, "<mask>, <mask>- ◌̰<mask>"), []seg{
		{"<mask>", 1000}, {", ", -1}, {"<mask>", 1000}, {"- ◌̰<mask>", -1},
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("single_word unicode:\n got %v\nwant %v", got, want)
	}

	tk = mk(AddedToken{Content: "<mask>", SingleWord: true, LStrip: true, RStrip: true, Special: true},
		AddedToken{Content: "<pad>", Special: true})
	if got, want := spans(tk, "Hi <mask> there\t<mask>\t<mask>\u2000 <pad> <mask><pad><pad>"), []seg{
		{"Hi", -1}, {" <mask> ", 1000}, {"there", -1}, {"\t<mask>\t", 1000}, {"<mask>\u2000 ", 1000},
		{"<pad>", 1001}, {" <mask>", 1000}, {"<pad>", 1001}, {"<pad>", 1001},
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("lstrip/rstrip:\n got %v\nwant %v", got, want)
	}

	tk = mk(AddedToken{Content: "my", LStrip: true, RStrip: true}, AddedToken{Content: "name"},
		AddedToken{Content: "ony", SingleWord: true}, AddedToken{Content: "[CLS]", Special: true},
		AddedToken{Content: "[SEP]", Special: true})
	if got, want := spans(tk, "[CLS] my name is anthony [SEP]"), []seg{
		{"[CLS]", 1003}, {" my ", 1000}, {"name", 1001}, {" is anthony ", -1}, {"[SEP]", 1004},
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("options:\n got %v\nwant %v", got, want)
	}
	// Through Encode, the stripped spaces vanish and the rest is byte-level encoded.
	if got, want := tk.Encode("[CLS] my name"), []int{1003, 1000, 1001}; !reflect.DeepEqual(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}
}

// TestAddedTokensNormalized: a normalized=true token is matched after NFC, so the decomposed
// spelling finds it; a normalized=false token is only found verbatim in the raw text.
func TestAddedTokensNormalized(t *testing.T) {
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[byteToStr[b]] = b
	}
	tk, err := New(vocab, nil, []AddedToken{
		{ID: 300, Content: "café", Normalized: true},
		{ID: 301, Content: "ne\u0301e", Normalized: false},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := tk.Encode("cafe\u0301!"); !reflect.DeepEqual(got, []int{300, '!'}) {
		t.Errorf("normalized token on NFD text: %v", got)
	}
	if got := tk.Encode("ne\u0301e"); !reflect.DeepEqual(got, []int{301}) {
		t.Errorf("raw token: %v", got)
	}
	if got := tk.Encode("née"); slices.Contains(got, 301) {
		t.Errorf("raw (normalized=false) token matched the NFC spelling: %v", got)
	}
}

// TestAddedTokenAdjacency: text around an added token is encoded independently, for every
// Qwen2.5 added token (special or not) and assorted neighbours.
func TestAddedTokenAdjacency(t *testing.T) {
	q := load(t, "qwen2.5")
	sides := []string{"", " ", "  ", "\n", "a", "Hello ", " world", "'s", "1", "中文", "e\u0301", "<", "|>", "<|", "\t\n"}
	if n := len(q.AddedTokens()); n != 22 {
		t.Fatalf("Qwen2.5 has %d added tokens, want 22", n)
	}
	for _, a := range q.AddedTokens() {
		for _, l := range sides {
			for _, r := range sides {
				got := q.Encode(l + a.Content + r)
				want := append(append(q.Encode(l), a.ID), q.Encode(r)...)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("Encode(%q) = %v, want %v", l+a.Content+r, got, want)
				}
			}
		}
	}
	// Longest match: "<|im_end|>" must not be cut as "<|im_end|" + ">"; overlapping candidates
	// resolve to the leftmost.
	id, _ := q.TokenID("<|im_end|>")
	if got := q.Encode("<|im_end|>>"); got[0] != id || len(got) != 2 {
		t.Errorf("Encode(<|im_end|>>) = %v", got)
	}
	// GPT-2 only knows <|endoftext|>; <|im_start|> is ordinary text.
	g := load(t, "gpt2")
	if got := g.Encode("<|im_start|>"); len(got) < 2 {
		t.Errorf("GPT-2 treated <|im_start|> as one token: %v", got)
	}
	if got := g.Encode("x<|endoftext|>y"); !reflect.DeepEqual(got, append(append(g.Encode("x"), 50256), g.Encode("y")...)) {
		t.Errorf("GPT-2 endoftext: %v", got)
	}
}

// trickyTexts are inputs without recorded Hugging Face ids; tests assert properties on them.
var trickyTexts = []string{
	"👩‍👩‍👧‍👦 🏳️‍🌈 🇯🇵 👍🏽 ☺︎ 1️⃣",
	"中文、日本語の「かな」と한국어 ࿐ 𠜎𠜱𠝹",
	"e\u0301 a\u0323\u0307 Å Ω K ḳ́ ǆ ﬁ ẞ",
	"１２３ ٣٤٥ ๑๒ Ⅻ ½ ² ⑦ 𝟘𝟙",
	"a\t\t\tb\n\n\n\nc\r\n\r\nd\r\re",
	"word   \n\n   \t\n next  \n",
	strings.Repeat(" ", 5000) + "x" + strings.Repeat("\n", 3000) + strings.Repeat("\t ", 2000),
	strings.Repeat("abc", 3000),
	strings.Repeat("😀", 500),
	"invalid \xff\xfe bytes \xe2\x82 and \xed\xa0\x80 surrogate",
	"\x00\x01\x1f\x7f control \u0085 nel \u2028 ls \ufeff bom \u200b zwsp \u00ad shy",
	"x'ſ X'S y'Ll Z'rE 'd'd'd",
	"<|im_start|><|im_start|x<|endoftext|><|endoftext|>",
	"",
}

func TestRoundTripTricky(t *testing.T) {
	cases := readCases(t)
	texts := slices.Clone(trickyTexts)
	for _, c := range cases {
		texts = append(texts, c.Text)
	}
	for _, name := range []string{"qwen2.5", "gpt2"} {
		tk := load(t, name)
		for _, s := range texts {
			want := validUTF8(s)
			if name == "qwen2.5" {
				want = norm.NFC.String(want)
			}
			ids := tk.Encode(s)
			if got := tk.Decode(ids, false); got != want {
				t.Errorf("%s: Decode(Encode(%.40q)) = %.60q", name, s, got)
			}
			for _, id := range ids {
				if _, ok := tk.Token(id); !ok {
					t.Errorf("%s: Encode(%.40q) gave unknown id %d", name, s, id)
				}
			}
			// Invalid bytes encode exactly like their U+FFFD replacement.
			if !reflect.DeepEqual(ids, tk.Encode(validUTF8(s))) {
				t.Errorf("%s: %q encodes differently from its valid form", name, s)
			}
		}
	}
}

// TestQwenPieceBoundaries checks consequences of the Qwen2 pattern on real ids: every \p{N}
// character is encoded on its own, and a NFD input encodes like its NFC form.
func TestQwenPieceBoundaries(t *testing.T) {
	q := load(t, "qwen2.5")
	for _, s := range []string{"１２３", "٣٤٥", "Ⅻ½²⑦", "2024", "𝟘𝟙𝟚"} {
		var want []int
		for _, r := range s {
			want = append(want, q.Encode(string(r))...)
		}
		if got := q.Encode(s); !reflect.DeepEqual(got, want) {
			t.Errorf("Encode(%q) = %v, want per-character %v", s, got, want)
		}
	}
	if a, b := q.Encode("Ame\u0301lie"), q.Encode("Amélie"); !reflect.DeepEqual(a, b) {
		t.Errorf("NFD %v != NFC %v", a, b)
	}
	// GPT-2 does not normalise.
	g := load(t, "gpt2")
	if a, b := g.Encode("Ame\u0301lie"), g.Encode("Amélie"); reflect.DeepEqual(a, b) {
		t.Errorf("GPT-2 normalised: %v", a)
	}
	// Very long whitespace runs: "\s+(?!\S)" leaves the last space for the word.
	long := strings.Repeat(" ", 1000) + "x"
	ids := q.Encode(long)
	if got := q.Decode(ids[len(ids)-1:], false); got != " x" {
		t.Errorf("last token of 1000 spaces + x decodes to %q, want \" x\"", got)
	}
}

func TestDecodeSkipSpecial(t *testing.T) {
	q := load(t, "qwen2.5")
	text := "<|im_start|>user\nhi<tool_call>x</tool_call><|im_end|>"
	ids := q.Encode(text)
	if got := q.Decode(ids, false); got != text {
		t.Errorf("Decode = %q", got)
	}
	// <tool_call> is an added token but not special: it stays.
	if got, want := q.Decode(ids, true), "user\nhi<tool_call>x</tool_call>"; got != want {
		t.Errorf("Decode(skip) = %q, want %q", got, want)
	}
	// Unknown ids are skipped, as in Hugging Face.
	if got := q.Decode([]int{9707, -1, 1 << 30, 1879}, false); got != "Hello world" {
		t.Errorf("Decode with unknown ids = %q", got)
	}
	g := load(t, "gpt2")
	if got := g.Decode([]int{15496, 50256, 995}, true); got != "Hello world" {
		t.Errorf("GPT-2 Decode(skip) = %q", got)
	}
	// A byte-level token holding half of a UTF-8 character decodes to U+FFFD.
	if got := q.Decode(q.Encode("中")[:1], false); !strings.Contains(got, "\uFFFD") && len(q.Encode("中")) > 1 {
		t.Errorf("partial character decoded to %q", got)
	}
}

func TestLookups(t *testing.T) {
	q := load(t, "qwen2.5")
	if got := q.VocabSize(); got != 151665 {
		t.Errorf("Qwen2.5 VocabSize = %d, want 151665", got)
	}
	if id, ok := q.TokenID("<|endoftext|>"); !ok || id != 151643 {
		t.Errorf("TokenID(<|endoftext|>) = %d %v", id, ok)
	}
	if id, ok := q.TokenID("Hello"); !ok || id != 9707 {
		t.Errorf("TokenID(Hello) = %d %v", id, ok)
	}
	if s, ok := q.Token(151644); !ok || s != "<|im_start|>" {
		t.Errorf("Token(151644) = %q %v", s, ok)
	}
	if s, ok := q.Token(1879); !ok || s != "Ġworld" {
		t.Errorf("Token(1879) = %q %v", s, ok)
	}
	if _, ok := q.Token(151665); ok {
		t.Error("Token(151665) exists")
	}
	added := q.AddedTokens()
	if added[0].Content != "<|endoftext|>" || !added[0].Special || added[0].Normalized {
		t.Errorf("first added token %+v", added[0])
	}
	nonSpecial := 0
	for _, a := range added {
		if !a.Special {
			nonSpecial++
		}
	}
	if nonSpecial != 8 {
		t.Errorf("%d non-special added tokens, want 8", nonSpecial)
	}
	g := load(t, "gpt2")
	if got := g.VocabSize(); got != 50257 {
		t.Errorf("GPT-2 VocabSize = %d", got)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	cases := readCases(t)
	for _, name := range []string{"qwen2.5", "gpt2"} {
		tk := load(t, name)
		path := filepath.Join(t.TempDir(), "tokenizer.json")
		if err := tk.Save(path); err != nil {
			t.Fatal(err)
		}
		back, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := Compare(tk, back); err != nil {
			t.Errorf("%s: Save/Load changed the tokenizer: %v", name, err)
		}
		for _, c := range cases {
			want := c.Qwen
			if name == "gpt2" {
				want = c.GPT2
			}
			if got := back.Encode(c.Text); !equalIDs(got, want) {
				t.Errorf("%s reloaded: %s: %v, want %v", name, c.Name, got, want)
			}
		}
		// No temporary file is left behind.
		ents, _ := os.ReadDir(filepath.Dir(path))
		if len(ents) != 1 {
			t.Errorf("Save left %d files", len(ents))
		}
	}
}

func TestCompare(t *testing.T) {
	q, g := load(t, "qwen2.5"), load(t, "gpt2")
	if err := Compare(q, q); err != nil {
		t.Errorf("Compare(q, q) = %v", err)
	}
	if err := Compare(q, g); err == nil || !strings.Contains(err.Error(), "vocabulary") {
		t.Errorf("Compare(qwen, gpt2) = %v", err)
	}
	vocab := map[string]int{"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5}
	base, err := New(vocab, [][2]string{{"a", "b"}, {"ab", "c"}, {"b", "c"}}, []AddedToken{{ID: 6, Content: "<s>", Special: true}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := New(vocab, [][2]string{{"a", "b"}, {"b", "c"}, {"ab", "c"}}, []AddedToken{{ID: 6, Content: "<s>", Special: true}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Compare(base, other); err == nil || !strings.Contains(err.Error(), "merge 1") {
		t.Errorf("Compare with swapped merges = %v", err)
	}
	other, _ = New(vocab, [][2]string{{"a", "b"}, {"ab", "c"}, {"b", "c"}}, []AddedToken{{ID: 6, Content: "<s>"}}, Options{})
	if err := Compare(base, other); err == nil || !strings.Contains(err.Error(), "added token") {
		t.Errorf("Compare with different added token = %v", err)
	}
	v2 := map[string]int{"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 5, "abc": 4}
	other, _ = New(v2, [][2]string{{"a", "b"}, {"ab", "c"}, {"b", "c"}}, []AddedToken{{ID: 6, Content: "<s>", Special: true}}, Options{})
	if err := Compare(base, other); err == nil || !strings.Contains(err.Error(), `"bc" has id 4 vs 5`) {
		t.Errorf("Compare with different ids = %v", err)
	}
}

// TestBPEMergeOrder checks the merge rule on a tiny model against hand-worked results:
// lowest rank first, leftmost on ties.
func TestBPEMergeOrder(t *testing.T) {
	vocab := map[string]int{"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5, "aa": 6, "aaa": 7}
	tk, err := New(vocab, [][2]string{{"b", "c"}, {"a", "b"}, {"a", "bc"}, {"a", "a"}}, nil, Options{Pipeline: PipelineGPT2})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string][]int{
		"abc":   {5},    // b c (rank 0) first, then a bc
		"ab":    {3},    // a b
		"abab":  {3, 3}, // both a b
		"aaa":   {6, 0}, // leftmost a a first
		"aaaa":  {6, 6}, // then the next non-overlapping one
		"cab":   {2, 3}, // c has no merge
		"abcbc": {5, 4}, // b c twice (leftmost first), then a bc
		"x":     nil,    // not in the vocabulary, no unk token: dropped as in Hugging Face
	} {
		if got := tk.Encode(in); !equalIDs(got, want) {
			t.Errorf("Encode(%q) = %v, want %v", in, got, want)
		}
	}
	// ignore_merges: a piece already in the vocabulary is taken whole.
	tk2, err := New(map[string]int{"a": 0, "b": 1, "ab": 2, "bab": 3}, [][2]string{{"a", "b"}}, nil, Options{Pipeline: PipelineGPT2, IgnoreMerges: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := tk2.Encode("bab"); !reflect.DeepEqual(got, []int{3}) {
		t.Errorf("ignore_merges Encode(bab) = %v", got)
	}
}

func TestNewErrors(t *testing.T) {
	vocab := map[string]int{"a": 0, "b": 1}
	if _, err := New(vocab, [][2]string{{"a", "b"}}, nil, Options{}); err == nil || !strings.Contains(err.Error(), `merges[0] "a b": merged token "ab"`) {
		t.Errorf("missing merged token: %v", err)
	}
	if _, err := New(vocab, [][2]string{{"a", "z"}}, nil, Options{}); err == nil || !strings.Contains(err.Error(), `"z" is not in the vocabulary`) {
		t.Errorf("missing merge part: %v", err)
	}
	if _, err := New(vocab, nil, []AddedToken{{ID: 1, Content: "<x>"}}, Options{}); err == nil || !strings.Contains(err.Error(), `id 1 is the vocabulary token "b"`) {
		t.Errorf("colliding added id: %v", err)
	}
	tk, err := New(vocab, nil, []AddedToken{{ID: -1, Content: "<x>"}, {ID: -1, Content: "a"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := tk.TokenID("<x>"); id != 2 {
		t.Errorf("auto id = %d, want 2", id)
	}
	if id, _ := tk.TokenID("a"); id != 0 {
		t.Errorf("auto id of a vocabulary token = %d, want 0", id)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	model := `"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}`
	for _, c := range []struct{ body, want string }{
		{`{"normalizer":{"type":"Lowercase"},` + model + `}`, `unsupported normalizer type "Lowercase"`},
		{`{"normalizer":{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Strip"}]},` + model + `}`, `Sequence[1]: unsupported normalizer type "Strip"`},
		{`{"pre_tokenizer":{"type":"Metaspace"},` + model + `}`, `unsupported pre_tokenizer type "Metaspace"`},
		{`{"pre_tokenizer":{"type":"Split","pattern":{"Regex":"x"},"behavior":"MergedWithNext"},` + model + `}`, `unsupported behavior "MergedWithNext"`},
		{`{"decoder":{"type":"WordPiece"},` + model + `}`, `unsupported decoder type "WordPiece"`},
		{`{"model":{"type":"WordPiece","vocab":{}}}`, `unsupported type "WordPiece"`},
		{`{"model":{"type":"BPE","byte_fallback":true,"vocab":{"a":0},"merges":[]}}`, `byte_fallback`},
		{`{"model":{"type":"BPE","dropout":0.1,"vocab":{"a":0},"merges":[]}}`, `dropout`},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":["a b c"]}}`, `merges[0] = "a b c"`},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":[["a"]]}}`, `merges[0]`},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":["a b"]}}`, `token "b" is not in the vocabulary`},
		{`{"model": [}`, `invalid JSON`},
		{`{}`, `no "model"`},
	} {
		p := write("t.json", c.body)
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("Load(%s): %v, want an error naming the file and %q", c.body, err, c.want)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
	// Merges as pairs, and a generic regex (regexp2 path) with Removed behaviour.
	p := write("ok.json", `{"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"-+"},"behavior":"Removed","invert":false},{"type":"ByteLevel","add_prefix_space":true,"use_regex":false}]},`+
		`"decoder":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"Ġ":3,"Ġab":4},"merges":[["a","b"],["Ġ","ab"]]}}`)
	tk, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	// "ab--ab" -> "ab", "ab" -> each gets a prefix space -> "Ġab" twice.
	if got := tk.Encode("ab--ab"); !reflect.DeepEqual(got, []int{4, 4}) {
		t.Errorf("Encode = %v, want [4 4]", got)
	}
}

// TestConcurrentEncode: one tokenizer (and its cache) shared by several goroutines gives the
// same ids as sequential use. Run with -race to check the locking.
func TestConcurrentEncode(t *testing.T) {
	q := load(t, "qwen2.5")
	cases := readCases(t)
	errs := make(chan string, 8*len(cases))
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for k := range cases {
				c := cases[(k+g*7)%len(cases)]
				if got := q.Encode(c.Text); !equalIDs(got, c.Qwen) {
					errs <- c.Name
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for name := range errs {
		t.Errorf("concurrent Encode differs on %s", name)
	}
}

// TestPhi2StyleWhitespaceTokens: Phi-2 (CodeGen) adds runs of spaces and tabs as added tokens
// with normalized=true on a GPT-2 pipeline. They are cut out before the regex, the longest
// run first, and decode back to their raw characters (which are outside the byte alphabet).
func TestPhi2StyleWhitespaceTokens(t *testing.T) {
	g := load(t, "gpt2")
	vocab := map[string]int{}
	for id := 0; id < 50257; id++ {
		s, _ := g.Token(id)
		vocab[s] = id
	}
	added := []AddedToken{{ID: 50256, Content: "<|endoftext|>", Special: true}}
	for n := 2; n <= 4; n++ {
		added = append(added, AddedToken{ID: 50255 + n, Content: strings.Repeat(" ", n), Normalized: true})
	}
	added = append(added, AddedToken{ID: 50260, Content: "\t\t", Normalized: true})
	phi, err := New(vocab, g.model.merges, added, Options{Pipeline: PipelineGPT2})
	if err != nil {
		t.Fatal(err)
	}
	text := "def f():\n     return 1\t\t\tx  y<|endoftext|>"
	ids := phi.Encode(text)
	// "\n" + 5 spaces: the 4-space token, then " return" as usual.
	want := append(append([]int{}, g.Encode("def f():\n")...), 50259)
	want = append(want, g.Encode(" return 1")...)
	want = append(want, 50260)
	want = append(want, g.Encode("\tx")...)
	want = append(want, 50257)
	want = append(want, g.Encode("y")...)
	want = append(want, 50256)
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("Encode = %v\nwant     %v", ids, want)
	}
	if got := phi.Decode(ids, false); got != text {
		t.Errorf("Decode = %q", got)
	}
	if got := phi.Decode(ids, true); got != strings.TrimSuffix(text, "<|endoftext|>") {
		t.Errorf("Decode(skip) = %q", got)
	}
}
