// Package tokenizer reads Hugging Face tokenizer.json files for byte-level BPE tokenizers
// (Qwen2/Qwen2.5, GPT-2, Phi-2) and reproduces the Hugging Face token ids exactly.
//
// Encoding follows the tokenizers library step by step:
//
//  1. Added tokens (every added_tokens entry, special or not) are cut out of the raw text
//     first: the longest match at the leftmost position wins, case-sensitively, honouring
//     single_word, lstrip and rstrip. Tokens with normalized=true are looked for afterwards,
//     in the normalised text of the pieces in between.
//  2. The text between added tokens is normalised (NFC, NFD, NFKC, NFKD or a Sequence).
//  3. It is pre-tokenised: Split on a regex (with \s = Unicode White_Space, \p{L} letters,
//     \p{N} numbers, as Oniguruma has them) and ByteLevel (bytes to the GPT-2 alphabet,
//     optionally the GPT-2 regex and a prefix space).
//  4. Each piece is BPE-encoded: the lowest-ranked merge first, the leftmost on ties.
//
// Go strings may hold invalid UTF-8, which a Hugging Face tokenizer (a Rust string) never
// sees. Encode first replaces each maximal ill-formed byte sequence by U+FFFD, exactly as
// Python's bytes.decode("utf-8", "replace") would, so the result equals HF's ids for the
// decoded string. Decode likewise returns valid UTF-8 (Rust's from_utf8_lossy).
package tokenizer

import (
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// AddedToken is one entry of tokenizer.json's added_tokens.
type AddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// Pipeline selects the normaliser, pre-tokeniser and decoder of a tokenizer built with New.
type Pipeline int

const (
	// PipelineQwen2 is Qwen2/Qwen2.5's: NFC, Split on QwenPattern (Isolated), ByteLevel with
	// add_prefix_space=false and use_regex=false, and a ByteLevel decoder.
	PipelineQwen2 Pipeline = iota
	// PipelineGPT2 is GPT-2's: no normaliser, ByteLevel with use_regex=true (GPT2Pattern) and
	// add_prefix_space=false, and a ByteLevel decoder.
	PipelineGPT2
)

// Options configures New.
type Options struct {
	Pipeline Pipeline
	// IgnoreMerges sets the BPE model's ignore_merges: a piece that is itself in the vocabulary
	// becomes that one token without applying merges (Llama-3 style).
	IgnoreMerges bool
}

// Tokenizer is a loaded byte-level BPE tokenizer. It is safe for concurrent use.
type Tokenizer struct {
	model *bpeModel

	added        []AddedToken   // sorted by id
	addedByID    map[int]int    // id -> index in added
	addedContent map[string]int // content -> id
	addedDecode  map[int]string // id -> string used when decoding (normalised content if normalized)
	special      map[string]bool
	rawAdded     *addedMatcher // tokens with normalized=false, matched on the raw text
	normAdded    *addedMatcher // tokens with normalized=true, matched on normalised text

	normalizers []norm.Form
	steps       []preStep
	// finalByteLevel is the last pre-tokenizer step when it is ByteLevel (see build).
	finalByteLevel *byteLevelStep
	decoder        decoderKind

	vocabSize int

	// JSON of the pipeline sections, written back by Save.
	sections map[string][]byte
}

type decoderKind int

const (
	decoderNone decoderKind = iota
	decoderByteLevel
)

// Encode returns the ids of text, as Hugging Face's tokenizer.encode(text).ids with no
// special tokens added. Invalid UTF-8 is first replaced by U+FFFD (see the package comment).
func (t *Tokenizer) Encode(text string) []int {
	text = validUTF8(text)
	ids := make([]int, 0, len(text)/3+1)
	t.rawAdded.split(text, func(seg string, id int) {
		if id >= 0 {
			ids = append(ids, id)
			return
		}
		seg = t.normalize(seg)
		t.normAdded.split(seg, func(seg string, id int) {
			if id >= 0 {
				ids = append(ids, id)
				return
			}
			if bl := t.finalByteLevel; bl != nil {
				t.preTokenize(0, seg, func(piece string) {
					bl.split(piece, func(raw string) { ids = t.model.tokenize(raw, true, ids) })
				})
				return
			}
			t.preTokenize(0, seg, func(piece string) {
				ids = t.model.tokenize(piece, false, ids)
			})
		})
	})
	return ids
}

func (t *Tokenizer) normalize(s string) string {
	for _, f := range t.normalizers {
		s = f.String(s)
	}
	return s
}

// preTokenize runs steps[k:] on s and calls emit for every non-empty final piece.
func (t *Tokenizer) preTokenize(k int, s string, emit func(string)) {
	if s == "" {
		return
	}
	if k == len(t.steps) {
		emit(s)
		return
	}
	t.steps[k].apply(s, func(piece string) { t.preTokenize(k+1, piece, emit) })
}

// Decode turns ids back into text like Hugging Face's tokenizer.decode(ids,
// skip_special_tokens=skipSpecial): unknown ids are skipped, special added tokens are
// dropped when skipSpecial, and the ByteLevel decoder maps characters back to bytes
// (invalid UTF-8 in the result becomes U+FFFD).
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		tok, ok := t.addedDecode[id]
		if !ok {
			tok, ok = t.model.vocabR[id]
		}
		if !ok {
			continue
		}
		if skipSpecial && t.special[tok] {
			continue
		}
		toks = append(toks, tok)
	}
	if t.decoder == decoderNone {
		return strings.Join(toks, " ")
	}
	buf := make([]byte, 0, 2*len(toks))
	for _, tok := range toks {
		buf = byteLevelUnmap(buf, tok)
	}
	return lossyUTF8(buf)
}

// TokenID returns the id of a token string (added tokens first, then the vocabulary).
func (t *Tokenizer) TokenID(token string) (int, bool) {
	if id, ok := t.addedContent[token]; ok {
		return id, true
	}
	id, ok := t.model.vocab[token]
	return id, ok
}

// Token returns the token string of an id (added tokens first, then the vocabulary).
func (t *Tokenizer) Token(id int) (string, bool) {
	if k, ok := t.addedByID[id]; ok {
		return t.added[k].Content, true
	}
	s, ok := t.model.vocabR[id]
	return s, ok
}

// VocabSize returns the largest id in the vocabulary or the added tokens, plus one.
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// AddedTokens returns a copy of the added tokens, sorted by id.
func (t *Tokenizer) AddedTokens() []AddedToken {
	return append([]AddedToken(nil), t.added...)
}

// Compare returns nil when a and b have identical vocabularies, merges and added tokens, and
// otherwise an error describing the first difference.
func Compare(a, b *Tokenizer) error {
	if a == nil || b == nil {
		return fmt.Errorf("tokenizer: Compare: nil tokenizer")
	}
	va, vb := a.model.vocab, b.model.vocab
	if len(va) != len(vb) {
		return fmt.Errorf("tokenizers differ: vocabulary has %d entries vs %d", len(va), len(vb))
	}
	for _, id := range sortedIDs(a.model.vocabR) {
		tok := a.model.vocabR[id]
		idb, ok := vb[tok]
		if !ok {
			return fmt.Errorf("tokenizers differ: vocabulary token %q (id %d) is missing from the second", tok, id)
		}
		if idb != id {
			return fmt.Errorf("tokenizers differ: vocabulary token %q has id %d vs %d", tok, id, idb)
		}
	}
	ma, mb := a.model.merges, b.model.merges
	for i := 0; i < min(len(ma), len(mb)); i++ {
		if ma[i] != mb[i] {
			return fmt.Errorf("tokenizers differ: merge %d is %q vs %q", i, ma[i][0]+" "+ma[i][1], mb[i][0]+" "+mb[i][1])
		}
	}
	if len(ma) != len(mb) {
		return fmt.Errorf("tokenizers differ: %d merges vs %d", len(ma), len(mb))
	}
	aa, ab := a.added, b.added
	for i := 0; i < min(len(aa), len(ab)); i++ {
		if aa[i] != ab[i] {
			return fmt.Errorf("tokenizers differ: added token %d is %+v vs %+v", i, aa[i], ab[i])
		}
	}
	if len(aa) != len(ab) {
		return fmt.Errorf("tokenizers differ: %d added tokens vs %d", len(aa), len(ab))
	}
	return nil
}

func sortedIDs(m map[int]string) []int {
	ids := make([]int, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// addedMatcher finds added tokens in text: leftmost-longest, non-overlapping, like the
// Aho-Corasick automaton (MatchKind::LeftmostLongest) of Hugging Face's AddedVocabulary.
type addedMatcher struct {
	byFirst [256][]int // candidate indices by first byte, longest first
	pats    []string
	toks    []AddedToken
}

func newAddedMatcher(toks []AddedToken, pats []string) *addedMatcher {
	if len(toks) == 0 {
		return nil
	}
	m := &addedMatcher{pats: pats, toks: toks}
	for i, p := range pats {
		m.byFirst[p[0]] = append(m.byFirst[p[0]], i)
	}
	for b := range m.byFirst {
		c := m.byFirst[b]
		sort.SliceStable(c, func(i, j int) bool { return len(pats[c[i]]) > len(pats[c[j]]) })
	}
	return m
}

// addedSpan is one piece of find's result: s[start:stop], an added token when id >= 0.
type addedSpan struct {
	start, stop, id int
}

// find splits s like Hugging Face's AddedVocabulary::find_matches: the added tokens (with the
// spaces lstrip/rstrip take along) and the non-empty text between them, in order.
func (m *addedMatcher) find(s string) []addedSpan {
	var out []addedSpan
	startOffset := 0
	for pos := 0; pos < len(s); {
		k, found := m.longestAt(s, pos)
		if !found {
			pos++
			continue
		}
		start, stop := pos, pos+len(m.pats[k])
		pos = stop // the automaton resumes after the match itself
		tok := m.toks[k]
		if tok.SingleWord {
			startSpace := start == 0 || !endsWithWord(s[:start])
			stopSpace := stop == len(s) || !startsWithWord(s[stop:])
			if !startSpace || !stopSpace {
				continue
			}
		}
		if tok.LStrip {
			start = max(len(strings.TrimRightFunc(s[:start], isSpace)), startOffset)
		}
		if tok.RStrip {
			stop = len(s) - len(strings.TrimLeftFunc(s[stop:], isSpace))
		}
		if startOffset < start {
			out = append(out, addedSpan{startOffset, start, -1})
		}
		out = append(out, addedSpan{start, stop, tok.ID})
		startOffset = stop
	}
	if startOffset < len(s) {
		out = append(out, addedSpan{startOffset, len(s), -1})
	}
	return out
}

// split calls emit for each segment of s in order: (text, -1) for text between tokens and
// (token text, id) for an added token. Empty text segments are not emitted.
func (m *addedMatcher) split(s string, emit func(string, int)) {
	if m == nil {
		if s != "" {
			emit(s, -1)
		}
		return
	}
	for _, sp := range m.find(s) {
		emit(s[sp.start:sp.stop], sp.id)
	}
}

func (m *addedMatcher) longestAt(s string, pos int) (int, bool) {
	for _, k := range m.byFirst[s[pos]] {
		if strings.HasPrefix(s[pos:], m.pats[k]) {
			return k, true
		}
	}
	return 0, false
}

// isWordChar is Rust regex's Unicode \w: Alphabetic, marks, decimal digits, connector
// punctuation and the join controls.
func isWordChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Other_Alphabetic, r) ||
		unicode.IsMark(r) || unicode.Is(unicode.Nd, r) || unicode.Is(unicode.Pc, r) || r == 0x200C || r == 0x200D
}

func endsWithWord(s string) bool {
	r, n := utf8.DecodeLastRuneInString(s)
	return n > 0 && isWordChar(r)
}

func startsWithWord(s string) bool {
	for _, r := range s {
		return isWordChar(r)
	}
	return false
}
