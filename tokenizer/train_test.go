package tokenizer

import (
	"fmt"
	"math/rand"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"
)

func trainCorpus() []string {
	rng := rand.New(rand.NewSource(7))
	words := []string{"the", "cat", "sat", "on", "mat", "a", "red", "ball", "is", "round", "café", "naïve",
		"数据", "模型", "2024", "don't", "It's", "😀", "\n", "  ", "what?!", "<image>"}
	var corpus []string
	for i := 0; i < 300; i++ {
		var sb strings.Builder
		for j := 0; j < 5+rng.Intn(20); j++ {
			if j > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(words[rng.Intn(len(words))])
		}
		corpus = append(corpus, sb.String())
	}
	return corpus
}

// naiveTrain is an independent, slow reference for TrainBPE's merge sequence: it recounts
// every pair from scratch at each step.
func naiveTrain(corpus []string, vocabSize int, added []string) [][2]string {
	counts := map[string]int{}
	for _, text := range corpus {
		for _, a := range added {
			text = strings.ReplaceAll(text, a, "\x00")
		}
		for _, seg := range strings.Split(text, "\x00") {
			seg = norm.NFC.String(seg)
			for _, sp := range (qwenMatcher{}).find(seg, nil) {
				counts[byteLevelMap(seg[sp[0]:sp[1]])]++
			}
		}
	}
	type word struct {
		syms []string
		n    int
	}
	var words []word
	for w, n := range counts {
		var syms []string
		for _, r := range w {
			syms = append(syms, string(r))
		}
		words = append(words, word{syms, n})
	}
	vocab := map[string]bool{}
	for b := 0; b < 256; b++ {
		vocab[byteToStr[b]] = true
	}
	var merges [][2]string
	for len(vocab)+len(added) < vocabSize {
		pc := map[[2]string]int{}
		for _, w := range words {
			for k := 0; k+1 < len(w.syms); k++ {
				pc[[2]string{w.syms[k], w.syms[k+1]}] += w.n
			}
		}
		var best [2]string
		bestN := 0
		for p, n := range pc {
			if n > bestN || (n == bestN && (p[0] < best[0] || (p[0] == best[0] && p[1] < best[1]))) {
				best, bestN = p, n
			}
		}
		if bestN == 0 {
			break
		}
		merges = append(merges, best)
		vocab[best[0]+best[1]] = true
		for i := range words {
			var ns []string
			s := words[i].syms
			for k := 0; k < len(s); k++ {
				if k+1 < len(s) && s[k] == best[0] && s[k+1] == best[1] {
					ns = append(ns, best[0]+best[1])
					k++
				} else {
					ns = append(ns, s[k])
				}
			}
			words[i].syms = ns
		}
	}
	return merges
}

func TestTrainBPE(t *testing.T) {
	corpus := trainCorpus()
	added := []string{"<image>", "<|endoftext|>"}
	tk, err := TrainBPE(corpus, 320, added)
	if err != nil {
		t.Fatal(err)
	}
	if got := tk.VocabSize(); got != 320 {
		t.Errorf("VocabSize = %d, want 320", got)
	}
	if want := naiveTrain(corpus, 320, added); !reflect.DeepEqual(tk.model.merges, want) {
		n := 0
		for n < min(len(want), len(tk.model.merges)) && want[n] == tk.model.merges[n] {
			n++
		}
		t.Fatalf("merges differ from the naive trainer at %d (%d vs %d merges)", n, len(tk.model.merges), len(want))
	}
	// Deterministic.
	tk2, err := TrainBPE(corpus, 320, added)
	if err != nil {
		t.Fatal(err)
	}
	if err := Compare(tk, tk2); err != nil {
		t.Errorf("two trainings differ: %v", err)
	}
	// The corpus round-trips and frequent words became single tokens.
	for _, s := range corpus {
		ids := tk.Encode(s)
		if got := tk.Decode(ids, false); got != norm.NFC.String(s) {
			t.Fatalf("round trip %q -> %q", s, got)
		}
	}
	if got := tk.Encode(" the"); len(got) != 1 {
		t.Errorf("Encode(\" the\") = %v, want one token", got)
	}
	img, ok := tk.TokenID("<image>")
	if !ok || img != 318 {
		t.Errorf("TokenID(<image>) = %d %v, want 318", img, ok)
	}
	if got := tk.Encode("a<image>b"); len(got) != 3 || got[1] != img {
		t.Errorf("Encode(a<image>b) = %v", got)
	}
	if got := tk.Decode(tk.Encode("x<|endoftext|>"), true); got != "x" {
		t.Errorf("Decode(skip special) = %q", got)
	}
	// Save -> Load keeps everything.
	path := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := tk.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Compare(tk, back); err != nil {
		t.Errorf("Save/Load: %v", err)
	}
	for _, s := range corpus[:20] {
		if a, b := tk.Encode(s), back.Encode(s); !reflect.DeepEqual(a, b) {
			t.Errorf("reloaded encodes %q as %v, want %v", s, b, a)
		}
	}

	// A vocabulary larger than the corpus supports stops when no pair is left.
	small, err := TrainBPE([]string{"ab ab"}, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := small.VocabSize(); got != 256+2 { // "ab", then "Ġ"+"ab"
		t.Errorf("tiny corpus VocabSize = %d, want 258", got)
	}
	if _, err := TrainBPE(corpus, 100, nil); err == nil {
		t.Error("vocabSize below 256 accepted")
	}
	if _, err := TrainBPE(corpus, 300, []string{"x", "x"}); err == nil {
		t.Error("repeated added token accepted")
	}
}

func BenchmarkEncodeQwen(b *testing.B) {
	tk := load(b, "qwen2.5")
	cases := readCases(b)
	var sb strings.Builder
	for sb.Len() < 1<<20 {
		for _, c := range cases {
			sb.WriteString(c.Text)
			sb.WriteString("\n")
		}
	}
	text := sb.String()
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tk.Encode(text)
	}
}

func BenchmarkEncodeQwenCold(b *testing.B) {
	tk := load(b, "qwen2.5")
	rng := rand.New(rand.NewSource(1))
	var sb strings.Builder
	for sb.Len() < 1<<20 {
		fmt.Fprintf(&sb, "word%x %s ", rng.Int63(), trainCorpus()[rng.Intn(300)])
	}
	text := sb.String()
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tk.model.cacheMu.Lock()
		tk.model.cache = map[string][]int{}
		tk.model.cacheMu.Unlock()
		tk.Encode(text)
	}
}
