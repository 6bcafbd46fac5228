package layers

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	gnn "github.com/gomlx/gomlx/ml/nn"

	"github.com/switchkd/switchkd/engine"
)

// BenchmarkDenseLayout compares x @ W^T with W stored [out, in] (checkpoint layout, what Linear
// uses) against W stored [in, out], at prefill shapes (M = 800: SigLIP-so400m MLP, Qwen2.5-0.5B
// MLP) and decode shapes (M = 1: the LM head and the MLP). docs/BENCHMARKS.md records a run:
//
//	GOEXPERIMENT=simd go test -run XXX -bench DenseLayout ./models/layers
func BenchmarkDenseLayout(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	mk := func(d ...int) *tensors.Tensor {
		n := 1
		for _, x := range d {
			n *= x
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return tensors.FromFlatDataAndDimensions(v, d...)
	}
	be := engine.MustBackend("")
	for _, s := range [][3]int{{800, 1152, 4304}, {800, 4304, 1152}, {800, 896, 4864}, {800, 4864, 896}, {1, 896, 151936}, {1, 896, 4864}} {
		m, k, n := s[0], s[1], s[2]
		x := mk(m, k)
		for _, layout := range []struct {
			name string
			kind compute.DenseLayout
			w    *tensors.Tensor
		}{{"out-in", compute.DenseLayoutOutputsInput, mk(n, k)}, {"in-out", compute.DenseLayoutInputOutputs, mk(k, n)}} {
			e := MustNewExec(be, func(x, w *Node) *Node { return gnn.Dense(x, w, nil, layout.kind) })
			e.MustExec(x, layout.w)
			b.Run(fmt.Sprintf("M%d_K%d_N%d/%s", m, k, n, layout.name), func(b *testing.B) {
				for range b.N {
					e.MustExec(x, layout.w)
				}
			})
		}
	}
}
