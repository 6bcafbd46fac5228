package tokenizer

import (
	"container/heap"
	"fmt"
	"slices"

	"golang.org/x/text/unicode/norm"
)

// TrainBPE trains a byte-level BPE tokenizer with the Qwen2 pipeline (PipelineQwen2) on corpus.
//
// The vocabulary starts with the 256 byte symbols (id = byte value). The added tokens are cut
// out of the corpus first (they never take part in merges); the rest is NFC-normalised,
// pre-tokenised with the Qwen2 pattern and mapped to bytes. Then the most frequent adjacent
// pair of symbols is merged, again and again, until the vocabulary plus the added tokens
// reach vocabSize or no pair is left. Ties go to the pair whose (left, right) strings sort
// first, so the result depends only on the input. The added tokens become special tokens
// (normalized=false) with the ids after the vocabulary, in the order given.
func TrainBPE(corpus []string, vocabSize int, added []string) (*Tokenizer, error) {
	if vocabSize < 256+len(added) {
		return nil, fmt.Errorf("tokenizer: TrainBPE: vocabSize %d is smaller than the 256 byte symbols plus %d added tokens", vocabSize, len(added))
	}
	seen := map[string]bool{}
	addedToks := make([]AddedToken, 0, len(added))
	for i, a := range added {
		if a == "" {
			return nil, fmt.Errorf("tokenizer: TrainBPE: added token %d is empty", i)
		}
		if seen[a] {
			return nil, fmt.Errorf("tokenizer: TrainBPE: added token %d %q is repeated", i, a)
		}
		seen[a] = true
		addedToks = append(addedToks, AddedToken{ID: -1, Content: a, Special: true})
	}
	// Cut the added tokens out with a matcher whose ids are just their indices.
	var pats []string
	matchToks := make([]AddedToken, len(addedToks))
	for i, a := range addedToks {
		pats = append(pats, a.Content)
		matchToks[i] = a
		matchToks[i].ID = i
	}
	am := newAddedMatcher(matchToks, pats)

	// Word frequencies.
	counts := map[string]int{}
	qm := qwenMatcher{}
	for _, text := range corpus {
		am.split(validUTF8(text), func(seg string, id int) {
			if id >= 0 || seg == "" {
				return
			}
			seg = norm.NFC.String(seg)
			for _, sp := range qm.find(seg, nil) {
				counts[byteLevelMap(seg[sp[0]:sp[1]])]++
			}
		})
	}

	vocab := make(map[string]int, vocabSize)
	symbols := make([]string, 0, vocabSize) // id -> string
	for b := 0; b < 256; b++ {
		vocab[byteToStr[b]] = b
		symbols = append(symbols, byteToStr[b])
	}
	// Words as symbol-id sequences, in a deterministic order.
	keys := make([]string, 0, len(counts))
	for w := range counts {
		keys = append(keys, w)
	}
	slices.Sort(keys)
	type word struct {
		syms []int
		n    int
	}
	words := make([]word, len(keys))
	for i, w := range keys {
		var syms []int
		for _, r := range w {
			syms = append(syms, vocab[string(r)])
		}
		words[i] = word{syms, counts[w]}
	}

	pairCount := map[uint64]int{}
	pairWords := map[uint64]map[int]struct{}{}
	addPairs := func(wi int, sign int) {
		w := words[wi]
		for k := 0; k+1 < len(w.syms); k++ {
			p := pairKey(w.syms[k], w.syms[k+1])
			pairCount[p] += sign * w.n
			if sign > 0 {
				if pairWords[p] == nil {
					pairWords[p] = map[int]struct{}{}
				}
				pairWords[p][wi] = struct{}{}
			}
		}
	}
	for wi := range words {
		addPairs(wi, 1)
	}
	h := &pairHeap{symbols: &symbols}
	for p, c := range pairCount {
		h.items = append(h.items, pairItem{p, c})
	}
	heap.Init(h)

	var merges [][2]string
	for len(symbols)+len(added) < vocabSize && h.Len() > 0 {
		top := heap.Pop(h).(pairItem)
		if c := pairCount[top.pair]; c != top.count || c <= 0 {
			continue // stale entry
		}
		a, b := int(top.pair>>32), int(uint32(top.pair))
		merged := symbols[a] + symbols[b]
		newID, exists := vocab[merged]
		if !exists {
			newID = len(symbols)
			vocab[merged] = newID
			symbols = append(symbols, merged)
		}
		merges = append(merges, [2]string{symbols[a], symbols[b]})
		// Rewrite every word holding the pair and update the counts.
		affected := sortedKeys(pairWords[top.pair])
		delete(pairWords, top.pair)
		changed := map[uint64]bool{}
		for _, wi := range affected {
			w := &words[wi]
			old := w.syms
			for k := 0; k+1 < len(old); k++ {
				p := pairKey(old[k], old[k+1])
				pairCount[p] -= w.n
				changed[p] = true
			}
			ns := make([]int, 0, len(old))
			for k := 0; k < len(old); k++ {
				if k+1 < len(old) && old[k] == a && old[k+1] == b {
					ns = append(ns, newID)
					k++
				} else {
					ns = append(ns, old[k])
				}
			}
			w.syms = ns
			for k := 0; k+1 < len(ns); k++ {
				p := pairKey(ns[k], ns[k+1])
				pairCount[p] += w.n
				changed[p] = true
				if pairWords[p] == nil {
					pairWords[p] = map[int]struct{}{}
				}
				pairWords[p][wi] = struct{}{}
			}
		}
		for p := range changed {
			if c := pairCount[p]; c > 0 {
				heap.Push(h, pairItem{p, c})
			} else {
				delete(pairCount, p)
			}
		}
	}
	return New(vocab, merges, addedToks, Options{Pipeline: PipelineQwen2})
}

type pairItem struct {
	pair  uint64
	count int
}

// pairHeap pops the most frequent pair; ties go to the pair whose strings sort first.
type pairHeap struct {
	items   []pairItem
	symbols *[]string
}

func (h *pairHeap) Len() int { return len(h.items) }
func (h *pairHeap) Less(i, j int) bool {
	x, y := h.items[i], h.items[j]
	if x.count != y.count {
		return x.count > y.count
	}
	s := *h.symbols
	xa, xb := s[int(x.pair>>32)], s[int(uint32(x.pair))]
	ya, yb := s[int(y.pair>>32)], s[int(uint32(y.pair))]
	if xa != ya {
		return xa < ya
	}
	return xb < yb
}
func (h *pairHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *pairHeap) Push(x any)    { h.items = append(h.items, x.(pairItem)) }
func (h *pairHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

func sortedKeys(m map[int]struct{}) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
