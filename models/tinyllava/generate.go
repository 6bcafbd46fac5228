package tinyllava

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/models/qwen2"
)

// GenerateOptions control decoding. Temperature 0 is greedy.
type GenerateOptions struct {
	MaxNewTokens int
	Temperature  float64
	TopP         float64 // nucleus sampling mass, (0, 1]; 0 or 1 = no cut
	Seed         uint64
	StopIDs      []int // generation of a row ends at the first of these (not included in the output)
	// OnStep, if set, is called after each step's tokens are chosen: step 0 from the prefill's
	// logits, step s > 0 after s decoding passes (benchmarks time the two phases with it).
	OnStep func(step int)
}

// Generate continues each input's prompt and returns the new token ids per input.
//
// The prompts are left-padded into one batch; a prefill pass fills a KV cache of fixed length
// Lmax (prompt + new tokens, rounded up), then each step feeds one token per row, so the prefix
// is never recomputed. Finished rows keep stepping (batched) but their output is frozen.
func (m *Model) Generate(inputs []Input, opts GenerateOptions) ([][]int, error) {
	c := m.Config
	if opts.MaxNewTokens <= 0 {
		return make([][]int, len(inputs)), nil
	}
	rows := make([][]int, len(inputs))
	P := 1
	var pixels []float32
	numImages := 0
	for i, in := range inputs {
		in.Labels = nil
		s, _, err := c.Splice(in)
		if err != nil {
			return nil, err
		}
		if len(s) == 0 {
			return nil, fmt.Errorf("sample %q: empty prompt", in.ID)
		}
		rows[i] = s
		P = max(P, len(s))
		for _, im := range in.Images {
			pixels = append(pixels, im...)
		}
		numImages += len(in.Images)
	}
	P = (P + 15) / 16 * 16
	lmax := (P + opts.MaxNewTokens + 63) / 64 * 64
	if P+opts.MaxNewTokens > c.Text.MaxPositionEmbeddings {
		return nil, fmt.Errorf("prompt (%d) + max new tokens (%d) exceed max_position_embeddings %d", P, opts.MaxNewTokens, c.Text.MaxPositionEmbeddings)
	}
	B := len(inputs)
	f := c.NumImageFeatures()
	// Prefill layout, left-padded.
	batch := &Batch{B: B, L: P, NumImages: numImages, Pixels: pixels,
		IDs: make([]int32, B*P), ImageSel: make([]int32, B*P), IsImage: make([]bool, B*P), Positions: make([]int32, B*P)}
	mask := make([]bool, B*P*lmax)
	offsets := make([]int, B)
	imgBase := 0
	for r, s := range rows {
		o := P - len(s)
		offsets[r] = o
		for t, v := range s {
			batch.place(r*P+o+t, v, imgBase*f)
			batch.Positions[r*P+o+t] = int32(t)
		}
		for t := 0; t < P; t++ {
			for j := 0; j <= t; j++ {
				if j >= o || j == t {
					mask[(r*P+t)*lmax+j] = true
				}
			}
		}
		imgBase += len(inputs[r].Images)
	}
	np := len(m.Params.Used)
	nl := c.Text.NumHiddenLayers

	maskT := tensors.FromFlatDataAndDimensions(mask, B, P, 1, lmax)
	var out []*tensors.Tensor
	var err error
	if m.HostKernels {
		out, err = m.prefillHost(batch, mask, lmax)
	} else {
		out, err = m.prefillGraph(batch, maskT)
	}
	if err != nil {
		return nil, fmt.Errorf("prefill: %w", err)
	}

	decode, err := m.exec("decode", func() (*Exec, error) {
		return NewExec(m.Backend, func(in []*Node) []*Node {
			w := Weights(m.Params.Used, in[:np])
			kv := in[np : np+2*nl]
			tok, positions, msk, at := in[np+2*nl], in[np+2*nl+1], in[np+2*nl+2], in[np+2*nl+3]
			emb := c.Embed(w, tok, nil, nil, nil)
			cache := &qwen2.Cache{K: kv[:nl], V: kv[nl:], Pos: at, Len: kv[0].Shape().Dimensions[1]}
			h, next := c.LLMCached(w, emb, positions, msk, cache)
			d := h.Shape().Dimensions
			o := []*Node{Reshape(c.Logits(w, h), d[0], c.Text.VocabSize)}
			o = append(o, next.K...)
			return append(o, next.V...)
		})
	})
	if err != nil {
		return nil, err
	}

	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))
	stop := map[int]bool{}
	for _, s := range opts.StopIDs {
		stop[s] = true
	}
	result := make([][]int, B)
	done := make([]bool, B)
	logits, caches := out[0], out[1:]
	for step := 0; ; step++ {
		flat, err := tensors.CopyFlatData[float32](logits)
		if err != nil {
			return nil, err
		}
		next := make([]int32, B)
		allDone := true
		for r := 0; r < B; r++ {
			row := flat[r*c.Text.VocabSize : (r+1)*c.Text.VocabSize]
			tok := pick(row, opts, rng)
			next[r] = int32(tok)
			if done[r] {
				continue
			}
			if stop[tok] {
				done[r] = true
				continue
			}
			result[r] = append(result[r], tok)
			if len(result[r]) >= opts.MaxNewTokens {
				done[r] = true
			}
			if !done[r] {
				allDone = false
			}
		}
		if opts.OnStep != nil {
			opts.OnStep(step)
		}
		if allDone {
			break
		}
		at := P + step
		positions := make([]int32, B)
		m1 := make([]bool, B*lmax)
		for r := 0; r < B; r++ {
			positions[r] = int32(at - offsets[r])
			for j := offsets[r]; j <= at; j++ {
				m1[r*lmax+j] = true
			}
		}
		dargs := m.ParamArgs()
		for _, t := range caches {
			d, err := DonateTensorBuffer(t, m.Backend, 0)
			if err != nil {
				return nil, err
			}
			dargs = append(dargs, d)
		}
		dargs = append(dargs, tensors.FromFlatDataAndDimensions(next, B, 1),
			tensors.FromFlatDataAndDimensions(positions, B, 1),
			tensors.FromFlatDataAndDimensions(m1, B, 1, 1, lmax),
			tensors.FromScalar(int32(at)))
		out, err := decode.Exec(dargs...)
		if err != nil {
			return nil, fmt.Errorf("decoding step %d: %w", step, err)
		}
		logits, caches = out[0], out[1:]
	}
	return result, nil
}

// prefillGraph runs a generation prefill as one graph: the last position's logits [B, V], then
// every layer's keys, then every layer's values (the KV cache, [B, Lmax, KVH, head dim]).
func (m *Model) prefillGraph(batch *Batch, mask *tensors.Tensor) ([]*tensors.Tensor, error) {
	c := m.Config
	np := len(m.Params.Used)
	numImages := batch.NumImages
	prefill, err := m.exec(fmt.Sprintf("prefill/img=%v", numImages > 0), func() (*Exec, error) {
		return NewExec(m.Backend, func(in []*Node) []*Node {
			w := Weights(m.Params.Used, in[:np])
			bn, rest := BatchInputs(in[np:], numImages > 0)
			g := bn.IDs.Graph()
			var imgEmb *Node
			if f := c.ImageFeatures(w, bn); f != nil {
				imgEmb = c.Project(w, f)
			}
			emb := c.Embed(w, bn.IDs, bn.ImageSel, bn.IsImage, imgEmb)
			d := emb.Shape().Dimensions
			lm := rest[0].Shape().Dimensions[3]
			cache := &qwen2.Cache{Pos: ScalarZero(g, bn.Positions.DType()), Len: lm}
			h, next := c.LLMCached(w, emb, bn.Positions, rest[0], cache)
			last := SliceAxis(h, 1, AxisElem(d[1]-1))
			out := []*Node{Reshape(c.Logits(w, last), d[0], c.Text.VocabSize)}
			out = append(out, next.K...)
			return append(out, next.V...)
		})
	})
	if err != nil {
		return nil, err
	}
	return prefill.Exec(append(append(m.ParamArgs(), batch.Args(c)...), mask)...)
}

// prefillHost is prefillGraph through hostHidden (HostKernels); mask is prefillGraph's, flat.
func (m *Model) prefillHost(batch *Batch, mask []bool, lmax int) ([]*tensors.Tensor, error) {
	c := m.Config
	np := len(m.Params.Used)
	x, ks, vs, err := m.hostHidden(batch, mask, lmax)
	if err != nil {
		return nil, err
	}
	e, err := m.exec("prefill/host", func() (*Exec, error) {
		return NewExec(m.Backend, func(in []*Node) *Node {
			w := Weights(m.Params.Used, in[:np])
			h := in[np]
			d := h.Shape().Dimensions
			last := c.FinalNorm(w, SliceAxis(h, 1, AxisElem(d[1]-1)))
			return Reshape(c.Logits(w, last), d[0], c.Text.VocabSize)
		})
	})
	if err != nil {
		return nil, err
	}
	out, err := e.Exec(append(m.ParamArgs(), x)...)
	x.FinalizeAll()
	if err != nil {
		return nil, err
	}
	return append(append(out, ks...), vs...), nil
}

// pick chooses the next token: argmax (first maximum) when greedy, else temperature + top-p
// sampling.
func pick(logits []float32, o GenerateOptions, rng *rand.Rand) int {
	if o.Temperature <= 0 {
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		return best
	}
	type cand struct {
		id int
		p  float64
	}
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	cands := make([]cand, len(logits))
	sum := 0.0
	for i, v := range logits {
		p := math.Exp((float64(v) - mx) / o.Temperature)
		cands[i] = cand{i, p}
		sum += p
	}
	sort.SliceStable(cands, func(a, b int) bool { return cands[a].p > cands[b].p })
	topP := o.TopP
	if topP <= 0 || topP > 1 {
		topP = 1
	}
	cut, acc := len(cands), 0.0
	for i, cd := range cands {
		acc += cd.p / sum
		if acc >= topP {
			cut = i + 1
			break
		}
	}
	cands = cands[:cut]
	total := 0.0
	for _, cd := range cands {
		total += cd.p
	}
	u := rng.Float64() * total
	for _, cd := range cands {
		u -= cd.p
		if u <= 0 {
			return cd.id
		}
	}
	return cands[len(cands)-1].id
}
