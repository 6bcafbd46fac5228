package data

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unicode"
)

// pieceEncoder is a toy tokenizer: Qwen2's pre-tokenisation regex
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// hand-coded, with "<|endoftext|>" as a special token and one id per distinct piece (no BPE merges).
// It reproduces the property TinyLLaVA's "-1" is about: a trailing space is its own piece at the end
// of a text but merges into a following word (" The"), not into a following digit (" ", "3").
type pieceEncoder struct {
	mu     sync.Mutex
	ids    map[string]int
	pieces []string
	bos    int // >= 0: prepend this id to every Encode (a Llama-style tokenizer)
}

func newPieceEncoder() *pieceEncoder {
	e := &pieceEncoder{ids: map[string]int{}, bos: -1}
	e.id(EOSText) // id 0
	return e
}

func (e *pieceEncoder) id(p string) int {
	if id, ok := e.ids[p]; ok {
		return id
	}
	e.ids[p] = len(e.pieces)
	e.pieces = append(e.pieces, p)
	return len(e.pieces) - 1
}

func (e *pieceEncoder) Encode(text string) []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []int
	if e.bos >= 0 {
		out = append(out, e.bos)
	}
	for i, seg := range strings.Split(text, EOSText) {
		if i > 0 {
			out = append(out, e.id(EOSText))
		}
		for _, p := range pretokenize(seg) {
			out = append(out, e.id(p))
		}
	}
	return out
}

// decode maps ids back to pieces ("<IMG>" for ImageTokenIndex, "<BOS>" for the BOS id).
func (e *pieceEncoder) decode(ids []int) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, len(ids))
	for i, id := range ids {
		switch {
		case id == ImageTokenIndex:
			out[i] = "<IMG>"
		case id == e.bos && e.bos >= 0:
			out[i] = "<BOS>"
		default:
			out[i] = e.pieces[id]
		}
	}
	return out
}

func pretokenize(s string) []string {
	rs := []rune(s)
	n := len(rs)
	isL := func(r rune) bool { return unicode.IsLetter(r) }
	isN := func(r rune) bool { return unicode.IsNumber(r) }
	isS := unicode.IsSpace
	isNL := func(r rune) bool { return r == '\r' || r == '\n' }
	isP := func(r rune) bool { return !isS(r) && !isL(r) && !isN(r) }
	var out []string
	for i := 0; i < n; {
		r := rs[i]
		j := i
		switch {
		case r == '\'' && func() bool {
			for _, c := range []string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"} {
				if i+len(c) <= n && strings.EqualFold(string(rs[i:i+len(c)]), c) {
					j = i + len(c)
					return true
				}
			}
			return false
		}():
		case isL(r) || (!isNL(r) && !isL(r) && !isN(r) && i+1 < n && isL(rs[i+1])):
			j = i + 1
			for j < n && isL(rs[j]) {
				j++
			}
		case isN(r):
			j = i + 1
		case isP(r) || (r == ' ' && i+1 < n && isP(rs[i+1])):
			j = i
			if r == ' ' {
				j++
			}
			for j < n && isP(rs[j]) {
				j++
			}
			for j < n && isNL(rs[j]) {
				j++
			}
		default: // whitespace
			k := i
			for k < n && isS(rs[k]) {
				k++
			}
			lastNL := -1
			for m := i; m < k; m++ {
				if isNL(rs[m]) {
					lastNL = m
				}
			}
			switch {
			case lastNL >= 0:
				j = lastNL + 1
			case k == n || k-i == 1:
				j = k
			default:
				j = k - 1
			}
		}
		out = append(out, string(rs[i:j]))
		i = j
	}
	return out
}

func TestPretokenizer(t *testing.T) {
	for in, want := range map[string][]string{
		"ASSISTANT: The cat": {"ASSISTANT", ":", " The", " cat"},
		"ASSISTANT: 3 cats":  {"ASSISTANT", ":", " ", "3", " cats"},
		"ASSISTANT: ":        {"ASSISTANT", ":", " "},
		"user's \nWhat  is":  {"user", "'s", " \n", "What", " ", " is"},
		"12?!\n":             {"1", "2", "?!\n"},
	} {
		if got := pretokenize(in); !reflect.DeepEqual(got, want) {
			t.Errorf("pretokenize(%q) = %q, want %q", in, got, want)
		}
	}
}

// The system prompt + " " as pieces (written out by hand from the template text).
var systemPieces = []string{"A", " chat", " between", " a", " curious", " user", " and", " an", " artificial",
	" intelligence", " assistant", ".", " The", " assistant", " gives", " helpful", ",", " detailed", ",", " and",
	" polite", " answers", " to", " the", " user", "'s", " questions", "."}

type tok struct {
	piece string
	sup   bool
}

func masked(p ...string) []tok {
	out := make([]tok, len(p))
	for i := range p {
		out[i] = tok{p[i], false}
	}
	return out
}

func supervised(p ...string) []tok {
	out := make([]tok, len(p))
	for i := range p {
		out[i] = tok{p[i], true}
	}
	return out
}

func seq(parts ...[]tok) []tok {
	var out []tok
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// check compares an Encoded against expected pieces and supervision flags.
func check(t *testing.T, e *pieceEncoder, got Encoded, want []tok) {
	t.Helper()
	gotPieces := e.decode(got.InputIDs)
	var wantPieces []string
	for _, w := range want {
		wantPieces = append(wantPieces, w.piece)
	}
	if !reflect.DeepEqual(gotPieces, wantPieces) {
		t.Fatalf("input ids:\n got %q\nwant %q", gotPieces, wantPieces)
	}
	if len(got.Labels) != len(got.InputIDs) {
		t.Fatalf("labels len %d, ids len %d", len(got.Labels), len(got.InputIDs))
	}
	for i, w := range want {
		wantLabel := IgnoreIndex
		if w.sup {
			wantLabel = got.InputIDs[i]
		}
		if got.Labels[i] != wantLabel {
			t.Errorf("position %d (%q): label %d, want %d", i, w.piece, got.Labels[i], wantLabel)
		}
	}
}

func TestEncodeSingleRoundWithImage(t *testing.T) {
	e := newPieceEncoder()
	got, err := EncodeConversation(e, []Turn{{"human", "<image>\nWhat is this?"}, {"gpt", "A cat."}}, 2048)
	if err != nil {
		t.Fatal(err)
	}
	check(t, e, got, seq(
		masked(systemPieces...),
		masked(" USER", ":", " ", "<IMG>", "\n", "What", " is", " this", "?", " ASSISTANT", ":"),
		supervised(" A", " cat", ".", EOSText),
	))
	if !got.HasImageToken || got.Warning != "" {
		t.Errorf("HasImageToken %v, warning %q", got.HasImageToken, got.Warning)
	}
	// The image placeholder moves to the front whatever its position and surrounding spaces.
	got2, err := EncodeConversation(e, []Turn{{"human", "  What is this?\n<image>  "}, {"gpt", "A cat."}}, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got2.InputIDs, got.InputIDs) || !reflect.DeepEqual(got2.Labels, got.Labels) {
		t.Errorf("<image> after the question: %q", e.decode(got2.InputIDs))
	}
}

func TestEncodeMultiTurnTextOnlyDigitAnswer(t *testing.T) {
	e := newPieceEncoder()
	// No <image>: the question is NOT stripped (the template only strips when it removes <image>).
	conv := []Turn{{"human", "Hi there"}, {"gpt", "Hello."}, {"human", "How many?  "}, {"gpt", "3 cats"}}
	got, err := EncodeConversation(e, conv, 2048)
	if err != nil {
		t.Fatal(err)
	}
	check(t, e, got, seq(
		masked(systemPieces...),
		masked(" USER", ":", " Hi", " there", " ASSISTANT", ":"),
		supervised(" Hello", ".", EOSText),
		masked("USER", ":", " How", " many", "?", "  ", " ASSISTANT", ":"),
		// Digit start: the space after "ASSISTANT:" is its own token and, because of the "-1", supervised.
		supervised(" ", "3", " cats", EOSText),
	))
	if got.HasImageToken || got.Warning != "" {
		t.Errorf("HasImageToken %v, warning %q", got.HasImageToken, got.Warning)
	}
}

func TestEncodeLeadingGPTTurnAndImageInSecondRound(t *testing.T) {
	e := newPieceEncoder()
	conv := []Turn{{"gpt", "dropped"}, {"human", "Describe."}, {"gpt", "Ok"}, {"human", "  Now <image> look "}, {"gpt", "Red"}}
	got, err := EncodeConversation(e, conv, 2048)
	if err != nil {
		t.Fatal(err)
	}
	check(t, e, got, seq(
		masked(systemPieces...),
		masked(" USER", ":", " Describe", ".", " ASSISTANT", ":"),
		supervised(" Ok", EOSText),
		masked("USER", ":", " ", "<IMG>", "\n", "Now", " ", " look", " ASSISTANT", ":"),
		supervised(" Red", EOSText),
	))
	if !got.HasImageToken {
		t.Error("HasImageToken false")
	}
}

func TestEncodeMismatchMasksEverything(t *testing.T) {
	e := newPieceEncoder()
	// The second question contains the separator: that round splits into 3 parts, the mask loop
	// stops, cur_len (round 1 only) != total_len, and TinyLLaVA ignores the whole sample.
	conv := []Turn{{"human", "Hi"}, {"gpt", "Yo"}, {"human", "say ASSISTANT: x"}, {"gpt", "no"}}
	got, err := EncodeConversation(e, conv, 2048)
	if err != nil {
		t.Fatal(err)
	}
	round1 := len(systemPieces) + len([]string{" USER", ":", " Hi", " ASSISTANT", ":", " Yo", EOSText})
	total := round1 + len([]string{"USER", ":", " say", " ASSISTANT", ":", " x", " ASSISTANT", ":", " no", EOSText})
	if len(got.InputIDs) != total {
		t.Fatalf("len %d, want %d: %q", len(got.InputIDs), total, e.decode(got.InputIDs))
	}
	for i, l := range got.Labels {
		if l != IgnoreIndex {
			t.Fatalf("label %d = %d, want all ignored", i, l)
		}
	}
	if want := fmt.Sprintf("tokenization mismatch: %d vs. %d", round1, total); !strings.Contains(got.Warning, want) {
		t.Errorf("warning %q, want %q", got.Warning, want)
	}
	// When cur_len >= model_max_length the check is skipped: round 1 stays supervised, the rest masked.
	got, err = EncodeConversation(e, conv, round1)
	if err != nil {
		t.Fatal(err)
	}
	check(t, e, got, seq(
		masked(systemPieces...),
		masked(" USER", ":", " Hi", " ASSISTANT", ":"),
		supervised(" Yo", EOSText),
		masked("USER", ":", " say", " ASSISTANT", ":", " x", " ASSISTANT", ":", " no", EOSText),
	))
	if got.Warning != "" {
		t.Errorf("unexpected warning %q", got.Warning)
	}
}

type bosEncoder struct{ *pieceEncoder }

func (b bosEncoder) SpecialTokens() SpecialTokens {
	return SpecialTokens{BOS: b.bos, EOS: b.ids[EOSText], Pad: 999999}
}

func TestEncodeWithBOSTokenizer(t *testing.T) {
	e := newPieceEncoder()
	e.bos = e.id("<s>")
	be := bosEncoder{e}
	// tokenizer_image_token keeps one BOS and drops the first id of every chunk.
	if got := e.decode(EncodePrompt(be, "a<image>b")); !reflect.DeepEqual(got, []string{"<BOS>", "a", "<IMG>", "b"}) {
		t.Errorf("EncodePrompt with BOS: %q", got)
	}
	// make_labels with a BOS-adding tokenizer and pad != eos: round_len counts a BOS per round and a BOS
	// in len(tok("<|endoftext|>")) = 2, so cur_len = N+1 != total_len = N and every label is ignored.
	got, err := EncodeConversation(be, []Turn{{"human", "Hi"}, {"gpt", "Yo"}}, 2048)
	if err != nil {
		t.Fatal(err)
	}
	n := 1 + len(systemPieces) + 6 + 1
	want := seq(masked("<BOS>"), masked(systemPieces...), masked(" USER", ":", " Hi", " ASSISTANT", ":", " Yo", EOSText))
	check(t, e, got, want)
	if w := fmt.Sprintf("tokenization mismatch: %d vs. %d", n+1, n); !strings.Contains(got.Warning, w) {
		t.Errorf("warning %q, want %q", got.Warning, w)
	}
}

func TestPromptStrings(t *testing.T) {
	sys := "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions. "
	// The spec's training prompt, literally.
	got := ConversationPrompt([]string{"<image>\nQ1", "Q2"}, []string{"A1", "A2"})
	if want := sys + "USER: <image>\nQ1 ASSISTANT: A1<|endoftext|>USER: Q2 ASSISTANT: A2<|endoftext|>"; got != want {
		t.Errorf("ConversationPrompt:\n got %q\nwant %q", got, want)
	}
	for _, c := range []struct {
		q        string
		hasImage bool
		want     string
	}{
		{"What is it?", true, sys + "USER: <image>\nWhat is it? ASSISTANT:"},
		{"  What?\n", false, sys + "USER:   What?\n ASSISTANT:"},
		{"  What?\n", true, sys + "USER: <image>\nWhat? ASSISTANT:"},
		{"<image> x", false, sys + "USER: <image>\nx ASSISTANT:"},
		{"", true, sys + "USER: <image> ASSISTANT:"},
	} {
		if got := GenerationPrompt(c.q, c.hasImage); got != c.want {
			t.Errorf("GenerationPrompt(%q, %v):\n got %q\nwant %q", c.q, c.hasImage, got, c.want)
		}
	}
	e := newPieceEncoder()
	ids := EncodePrompt(e, GenerationPrompt("What?", true))
	want := append(append([]string{}, systemPieces...), " USER", ":", " ", "<IMG>", "\n", "What", "?", " ASSISTANT", ":")
	if got := e.decode(ids); !reflect.DeepEqual(got, want) {
		t.Errorf("EncodePrompt:\n got %q\nwant %q", got, want)
	}
}

func TestEncodeConversationErrors(t *testing.T) {
	e := newPieceEncoder()
	for _, c := range []struct {
		conv []Turn
		want string
	}{
		{nil, "empty"},
		{[]Turn{{"human", "q"}}, "1 questions but 0 answers"},
		{[]Turn{{"human", "q"}, {"human", "q2"}}, `turn 1: from "human", want "gpt"`},
		{[]Turn{{"human", "q"}, {"gpt", "a"}, {"bot", "x"}}, `turn 2: from "bot", want "human"`},
		{[]Turn{{"gpt", "only"}}, "no human/gpt round"},
	} {
		if _, err := EncodeConversation(e, c.conv, 2048); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.conv, err, c.want)
		}
	}
}

func TestPySliceFill(t *testing.T) {
	s := []int{1, 2, 3, 4}
	pySliceFill(s, 0, -1, 0) // labels[0:-1]
	if !reflect.DeepEqual(s, []int{0, 0, 0, 4}) {
		t.Errorf("negative stop: %v", s)
	}
	s = []int{1, 2, 3, 4}
	pySliceFill(s, 3, 10, 0)
	pySliceFill(s, 7, 9, 0)
	if !reflect.DeepEqual(s, []int{1, 2, 3, 0}) {
		t.Errorf("clamping: %v", s)
	}
}
