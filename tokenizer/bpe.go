package tokenizer

import (
	"container/heap"
	"strings"
	"sync"
	"unicode/utf8"
)

// mergeInfo is one merge rule: its rank (position in the merges list) and the merged token's id.
type mergeInfo struct {
	rank  int32
	newID int32
}

func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// bpeModel is a byte-level BPE model as Hugging Face's BPE with dropout, continuing-subword
// prefix, end-of-word suffix and byte fallback all unset.
type bpeModel struct {
	vocab        map[string]int
	vocabR       map[int]string
	merges       [][2]string // in rank order, as given
	mergeMap     map[uint64]mergeInfo
	unkToken     string // "" when none
	fuseUnk      bool
	ignoreMerges bool

	cacheMu sync.RWMutex
	cache   map[string][]int
}

const (
	cacheMaxWordLen = 256     // longer pieces are not cached (as Hugging Face)
	cacheMaxEntries = 1 << 18 // the cache is emptied when it reaches this size
)

// tokenize appends the ids of one pre-tokenized piece to dst. With byteLevel, piece is raw
// text that still has to be mapped to the byte-level alphabet; the cache is keyed by what
// tokenize receives (one tokenizer always calls it the same way).
func (m *bpeModel) tokenize(piece string, byteLevel bool, dst []int) []int {
	if piece == "" {
		return dst
	}
	cacheable := len(piece) < cacheMaxWordLen
	if cacheable {
		m.cacheMu.RLock()
		ids, ok := m.cache[piece]
		m.cacheMu.RUnlock()
		if ok {
			return append(dst, ids...)
		}
	}
	word := piece
	if byteLevel {
		word = byteLevelMap(piece)
	}
	var ids []int
	if id, ok := m.vocab[word]; ok && m.ignoreMerges {
		ids = []int{id}
	} else {
		ids = m.mergeWord(word)
	}
	if cacheable {
		m.cacheMu.Lock()
		if len(m.cache) >= cacheMaxEntries {
			m.cache = make(map[string][]int)
		}
		m.cache[strings.Clone(piece)] = ids
		m.cacheMu.Unlock()
	}
	return append(dst, ids...)
}

type symbol struct {
	id         int
	prev, next int
	size       int // 0 once merged into its left neighbour
}

type mergeCand struct {
	pos   int
	rank  int32
	newID int32
}

type mergeHeap []mergeCand

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].pos < h[j].pos
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(mergeCand)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeWord splits piece into characters and applies the merges: always the pair with the
// lowest rank, the leftmost one among equal ranks. Characters missing from the vocabulary
// become the unknown token (fused when fuse_unk) or, without one, are dropped, as in
// Hugging Face.
func (m *bpeModel) mergeWord(piece string) []int {
	syms := make([]symbol, 0, utf8.RuneCountInString(piece))
	unkID, hasUnk := -1, false
	if m.unkToken != "" {
		unkID, hasUnk = m.vocab[m.unkToken]
	}
	pendingUnk := false
	flushUnk := func() {
		if pendingUnk {
			syms = append(syms, symbol{id: unkID, size: 1})
			pendingUnk = false
		}
	}
	for i := 0; i < len(piece); {
		_, n := utf8.DecodeRuneInString(piece[i:])
		if id, ok := m.vocab[piece[i:i+n]]; ok {
			flushUnk()
			syms = append(syms, symbol{id: id, size: n})
		} else if hasUnk {
			if !m.fuseUnk {
				flushUnk()
			}
			pendingUnk = true
		}
		i += n
	}
	flushUnk()
	for k := range syms {
		syms[k].prev = k - 1
		syms[k].next = k + 1
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}

	if len(syms) > 1 {
		h := make(mergeHeap, 0, len(syms))
		for k := 0; k+1 < len(syms); k++ {
			if mi, ok := m.mergeMap[pairKey(syms[k].id, syms[k+1].id)]; ok {
				h = append(h, mergeCand{pos: k, rank: mi.rank, newID: mi.newID})
			}
		}
		heap.Init(&h)
		for h.Len() > 0 {
			top := heap.Pop(&h).(mergeCand)
			cur := &syms[top.pos]
			if cur.size == 0 || cur.next < 0 {
				continue
			}
			right := syms[cur.next]
			// Skip stale candidates: the pair at pos must still be the one this merge makes.
			if mi, ok := m.mergeMap[pairKey(cur.id, right.id)]; !ok || mi.newID != top.newID {
				continue
			}
			cur.id = int(top.newID)
			cur.size += right.size
			syms[cur.next].size = 0
			cur.next = right.next
			if right.next >= 0 {
				syms[right.next].prev = top.pos
			}
			if cur.prev >= 0 {
				if mi, ok := m.mergeMap[pairKey(syms[cur.prev].id, cur.id)]; ok {
					heap.Push(&h, mergeCand{pos: cur.prev, rank: mi.rank, newID: mi.newID})
				}
			}
			if cur.next >= 0 {
				if mi, ok := m.mergeMap[pairKey(cur.id, syms[cur.next].id)]; ok {
					heap.Push(&h, mergeCand{pos: top.pos, rank: mi.rank, newID: mi.newID})
				}
			}
		}
	}
	ids := make([]int, 0, len(syms))
	for k := 0; k >= 0 && k < len(syms); k = syms[k].next {
		ids = append(ids, syms[k].id)
	}
	return ids
}
