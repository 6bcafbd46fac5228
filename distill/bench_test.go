package distill

import (
	"fmt"
	"math/rand"
	"syscall"
	"testing"
	"time"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// Benchmarks: forward + backward (gradient w.r.t. the student logits) of the mean over positions
// of CE + BiLD + DBiLD, float32, go backend, at the real Qwen vocabulary and at a small size.
//
//	GOEXPERIMENT=simd go test ./distill/ -run XXX -bench Losses -benchtime 3x
//
// Besides ns/op (wall clock) the benchmarks report cpu-ms/op (process user+system time), which is
// the steadier figure on a shared machine.

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// randLogits returns [n, v] float32 logits drawn from N(0, scale^2).
func randLogits(rng *rand.Rand, n, v int, scale float64) *tensors.Tensor {
	d := make([]float32, n*v)
	for i := range d {
		d[i] = float32(rng.NormFloat64() * scale)
	}
	return tensors.FromFlatDataAndDimensions(d, n, v)
}

type benchLoss struct {
	name string
	fn   func(t, s, labels, mask *Node) *Node
}

var benchLosses = []benchLoss{
	{"CE+BiLD+DBiLD", func(t, s, labels, mask *Node) *Node {
		d := DBiLD(t, s, mask, DefaultDBiLDOptions()) // first: BiLD's top-8 are prefixes of its top-64
		return Add(Add(d, BiLD(t, s, mask, 8, 3)), CE(s, labels, mask))
	}},
	{"CE", func(_, s, labels, mask *Node) *Node { return CE(s, labels, mask) }},
	{"BiLD", func(t, s, _, mask *Node) *Node { return BiLD(t, s, mask, 8, 3) }},
	{"DBiLD", func(t, s, _, mask *Node) *Node { return DBiLD(t, s, mask, DefaultDBiLDOptions()) }},
	{"FKL", func(t, s, _, mask *Node) *Node { return ForwardKL(t, s, mask, 3) }},
}

func benchLossesAt(b *testing.B, n, v int, which []benchLoss) {
	rng := rand.New(rand.NewSource(1))
	tT, sT := randLogits(rng, n, v, 3), randLogits(rng, n, v, 3)
	lab := make([]int32, n)
	mask := make([]float32, n)
	for i := range lab {
		lab[i] = int32(rng.Intn(v))
		mask[i] = 1
	}
	labT, maskT := tensors.FromFlatDataAndDimensions(lab, n), tensors.FromFlatDataAndDimensions(mask, n)
	for _, l := range which {
		b.Run(fmt.Sprintf("%s/N%d_V%d", l.name, n, v), func(b *testing.B) {
			e := MustNewExec(backend(), func(in []*Node) []*Node {
				loss := MaskedMean(l.fn(in[0], in[1], in[2], in[3]), in[3])
				return []*Node{loss, Gradient(loss, in[1])[0]}
			})
			run := func() {
				out := e.MustExec(tT, sT, labT, maskT)
				for _, o := range out {
					o.FinalizeAll()
				}
			}
			run() // compile + warm up
			b.ResetTimer()
			c0 := cpuNow()
			for b.Loop() {
				run()
			}
			b.ReportMetric(float64((cpuNow()-c0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}

func BenchmarkLossesSmall(b *testing.B) { benchLossesAt(b, 64, 512, benchLosses) }

func BenchmarkLossesQwenVocab(b *testing.B) { benchLossesAt(b, 256, 151936, benchLosses) }

// BenchmarkTopMIndices times the top-64 selection alone (no gradient) on N(0, 1) rows: the
// small preset's [32, 512] (M rounds of ArgMax) and Qwen-vocabulary rows (the tournament).
//
//	GOEXPERIMENT=simd go test ./distill/ -run XXX -bench TopMIndices
func BenchmarkTopMIndices(b *testing.B) {
	rng := rand.New(rand.NewSource(2))
	for _, d := range [][2]int{{32, 512}, {32, 151936}} {
		n, v := d[0], d[1]
		x := make([]float32, n*v)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		xt := tensors.FromFlatDataAndDimensions(x, n, v)
		e := MustNewExec(backend(), func(x *Node) *Node { return TopMIndices(x, 64) })
		e.MustExec1(xt).FinalizeAll()
		b.Run(fmt.Sprintf("N%d_V%d_M64", n, v), func(b *testing.B) {
			for b.Loop() {
				e.MustExec1(xt).FinalizeAll()
			}
		})
	}
}

// BenchmarkLossesGivenSelections times the losses of a Switch-KD step as bench-step's losses
// graph builds them (DBiLD(T, S) + DBiLD(T, W) + BiLD(T, S) + CE, forward and the gradient in S
// and W; [32, 512] logits) with none, the teacher's, or all three top-64 selections given as
// graph inputs instead of computed (TopMIndices' per-graph memo filled with parameters): the
// difference is what the in-graph selections cost.
//
//	GOEXPERIMENT=simd go test ./distill/ -run XXX -bench LossesGivenSelections
func BenchmarkLossesGivenSelections(b *testing.B) {
	const n, v, m = 32, 512, 64
	rng := rand.New(rand.NewSource(3))
	t, s, w := randLogits(rng, n, v, 3), randLogits(rng, n, v, 3), randLogits(rng, n, v, 3)
	lab := make([]int32, n)
	mask := make([]float32, n)
	for i := range lab {
		lab[i], mask[i] = int32(rng.Intn(v)), 1
	}
	// Given selections: valid distinct indices (their values do not change the work).
	idx := make([]int32, n*m)
	for i := range idx {
		idx[i] = int32(i % m * 7)
	}
	sel := tensors.FromFlatDataAndDimensions(idx, n, m)
	for _, given := range []int{0, 1, 3} {
		b.Run(fmt.Sprintf("given%d", given), func(b *testing.B) {
			e := MustNewExec(backend(), func(in []*Node) []*Node {
				t, s, w, lab, mask := in[0], in[1], in[2], in[3], in[4]
				memo := map[*Node]*Node{}
				for i, x := range []*Node{t, s, w}[:given] {
					memo[x] = in[5+i]
				}
				t.Graph().AttachState(topMMemoKey{}, memo)
				o := DefaultDBiLDOptions()
				loss := ReduceAllSum(DBiLD(t, s, mask, o))
				loss = Add(loss, ReduceAllSum(DBiLD(t, w, mask, o)))
				loss = Add(loss, ReduceAllSum(BiLD(t, s, mask, 8, 3)))
				loss = Add(loss, ReduceAllSum(CE(s, lab, mask)))
				return Gradient(loss, s, w)
			})
			args := []any{t, s, w, tensors.FromFlatDataAndDimensions(lab, n), tensors.FromFlatDataAndDimensions(mask, n)}
			for range given {
				args = append(args, sel)
			}
			run := func() {
				for _, o := range e.MustExec(args...) {
					o.FinalizeAll()
				}
			}
			run()
			b.ResetTimer()
			for b.Loop() {
				run()
			}
		})
	}
}
