package hostops_test

import (
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/engine"
	"github.com/switchkd/switchkd/models/hostops"
	"github.com/switchkd/switchkd/models/layers"
)

// The host kernels against the go backend's own, at SigLIP-so400m's shapes (one 384px image):
// the attention scores of one layer [16, 729, 729] and the MLP activation [729, 4304].
//
//	GOEXPERIMENT=simd go test -run XXX -bench 'Kernels' ./models/hostops

func randomTensor(dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	rng := rand.New(rand.NewPCG(1, 1))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(v, dims...)
}

func benchGraph(b *testing.B, x *tensors.Tensor, fn func(*Node) *Node) {
	e, err := NewExec(engine.MustBackend(""), fn)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(4 * x.Shape().Size()))
	for b.Loop() {
		out, err := e.Exec(x)
		if err != nil {
			b.Fatal(err)
		}
		out[0].FinalizeAll()
	}
}

func benchHost(b *testing.B, x *tensors.Tensor, fn func([]float32)) {
	b.SetBytes(int64(4 * x.Shape().Size()))
	for b.Loop() {
		tensors.MustMutableFlatData(x, fn)
	}
}

func BenchmarkKernelsSoftmax(b *testing.B) {
	x := randomTensor(16, 729, 729)
	b.Run("backend", func(b *testing.B) { benchGraph(b, x, layers.SoftmaxLastAxis) })
	b.Run("hostops", func(b *testing.B) { benchHost(b, x, func(f []float32) { hostops.SoftmaxRows(f, 729) }) })
}

func BenchmarkKernelsGelu(b *testing.B) {
	x := randomTensor(729, 4304)
	b.Run("backend", func(b *testing.B) { benchGraph(b, x, layers.GeluTanh) })
	b.Run("hostops", func(b *testing.B) { benchHost(b, x, hostops.GeluTanh) })
}

func BenchmarkKernelsSiLUMul(b *testing.B) {
	g, u := randomTensor(800, 4864), randomTensor(800, 4864)
	b.Run("backend", func(b *testing.B) {
		e, err := NewExec(engine.MustBackend(""), func(g, u *Node) *Node { return Mul(layers.SiLU(g), u) })
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(4 * g.Shape().Size()))
		for b.Loop() {
			out, err := e.Exec(g, u)
			if err != nil {
				b.Fatal(err)
			}
			out[0].FinalizeAll()
		}
	})
	b.Run("hostops", func(b *testing.B) {
		uf := tensors.MustCopyFlatData[float32](u)
		benchHost(b, g, func(f []float32) { hostops.SiLUMul(f, uf) })
	})
}
