package layers

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
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
	mk := func(d ...int) *tensors.Tensor { return randTensor(r, 1, d...) }
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

// BenchmarkRowBlocks compares an MLP block over 800 positions run whole against RowBlocks's two
// concurrent halves: SigLIP-so400m's (fc1 + bias, tanh GELU, fc2 + bias) and Qwen2.5-0.5B's
// (SwiGLU, the gate's SiLU fused into its matmul). docs/BENCHMARKS.md records a run:
//
//	GOEXPERIMENT=simd go test -run XXX -bench RowBlocks ./models/layers
func BenchmarkRowBlocks(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	mk := func(d ...int) *tensors.Tensor { return randTensor(r, 0.05, d...) }
	be := engine.MustBackend("")
	const m = 800
	for _, mlp := range []struct {
		name  string
		k, n  int
		block func(x, w1, b1, w2, w3 *Node) *Node
	}{
		{"siglip_so400m", 1152, 4304, func(x, w1, b1, w2, _ *Node) *Node {
			return Linear(GeluTanh(Linear(x, w1, b1)), w2, nil)
		}},
		{"qwen2.5_0.5b", 896, 4864, func(x, w1, _, w2, w3 *Node) *Node {
			return Linear(Mul(LinearSiLU(x, w1), Linear(x, w3, nil)), w2, nil)
		}},
	} {
		x, w1, b1, w2, w3 := mk(1, m, mlp.k), mk(mlp.n, mlp.k), mk(mlp.n), mk(mlp.k, mlp.n), mk(mlp.n, mlp.k)
		for _, split := range []bool{false, true} {
			e := MustNewExec(be, func(x, w1, b1, w2, w3 *Node) *Node {
				fn := func(in []*Node) []*Node { return []*Node{mlp.block(in[0], w1, b1, w2, w3)} }
				if !split {
					return fn([]*Node{x})[0]
				}
				return RowBlocks(fn, x)[0]
			})
			e.MustExec(x, w1, b1, w2, w3)
			name := "whole"
			if split {
				name = "RowBlocks"
			}
			b.Run(fmt.Sprintf("%s_M%d/%s", mlp.name, m, name), func(b *testing.B) {
				for range b.N {
					e.MustExec(x, w1, b1, w2, w3)
				}
			})
		}
	}
}

// BenchmarkSmallMatmulLayouts times the go backend's small-matmul kernels (products below
// goSmallMatmulFlops) at the bench-step small preset's shapes, x [N, K] times a right operand
// laid out [M, K] ("transposed", how Linear reads a checkpoint weight and how Einsum reads the
// attention's keys), laid out [K, M] ("non-transposed"), and laid out [M, K] but transposed to
// [K, M] inside the graph first ("transpose+non-transposed", what Linear and the attention do
// where goSmall says so). Each op is 16 chained products (x + r for r < 16, so none is merged
// with another), to keep the executor's per-run cost out of the comparison:
//
//	GOEXPERIMENT=simd go test -run XXX -bench SmallMatmulLayouts ./models/layers
func BenchmarkSmallMatmulLayouts(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	be := engine.MustBackend("")
	const chain = 16
	for _, s := range [][3]int{{128, 64, 128}, {128, 64, 256}, {128, 128, 128}, {64, 64, 128}, {32, 64, 512}, {32, 128, 512}, {256, 16, 128}, {256, 128, 16}} {
		n, k, m := s[0], s[1], s[2]
		x, wT, wN := randTensor(r, 1, n, k), randTensor(r, 1, m, k), randTensor(r, 1, k, m)
		for _, v := range []struct {
			name string
			w    *tensors.Tensor
			dot  func(x, w *Node) *Node
		}{
			{"transposed", wT, func(x, w *Node) *Node { return DotGeneral(x, []int{1}, nil, w, []int{1}, nil) }},
			{"non-transposed", wN, func(x, w *Node) *Node { return DotGeneral(x, []int{1}, nil, w, []int{0}, nil) }},
			{"transpose+non-transposed", wT, func(x, w *Node) *Node {
				return DotGeneral(x, []int{1}, nil, Transpose(w, 0, 1), []int{0}, nil)
			}},
		} {
			e := MustNewExec(be, func(x, w *Node) *Node {
				var sum *Node
				for i := range chain {
					y := v.dot(AddScalar(x, float64(i)), AddScalar(w, float64(i)))
					if sum == nil {
						sum = y
					} else {
						sum = Add(sum, y)
					}
				}
				return sum
			})
			e.MustExec(x, v.w)
			b.Run(fmt.Sprintf("N%d_K%d_M%d/%s", n, k, m, v.name), func(b *testing.B) {
				for range b.N {
					e.MustExec(x, v.w)
				}
			})
		}
	}
}

// randTensor is a float32 tensor of the given dimensions with N(0, std^2) values.
func randTensor(r *rand.Rand, std float64, dims ...int) *tensors.Tensor {
	n := 1
	for _, x := range dims {
		n *= x
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * std)
	}
	return tensors.FromFlatDataAndDimensions(v, dims...)
}

// BenchmarkSumLastAxis compares ReduceSum over the last axis with SumLastAxis (a product with
// ones on the go backend) at the sizes of the small preset's norms, softmax gradients and loss
// sums. Each op is 16 chained sums (x + r for r < 16):
//
//	GOEXPERIMENT=simd go test -run XXX -bench SumLastAxis ./models/layers
func BenchmarkSumLastAxis(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	be := engine.MustBackend("")
	const chain = 16
	for _, c := range []struct {
		dims []int
		dt   dtypes.DType
	}{{[]int{128, 128}, dtypes.Float32}, {[]int{128, 64}, dtypes.Float32}, {[]int{32, 512}, dtypes.Float64}, {[]int{2048, 8}, dtypes.Float64}} {
		x := randTensor(r, 1, c.dims...)
		for _, v := range []struct {
			name string
			sum  func(x *Node) *Node
		}{{"ReduceSum", func(x *Node) *Node { return ReduceSum(x, -1) }}, {"SumLastAxis", func(x *Node) *Node { return SumLastAxis(x, false) }}} {
			e := MustNewExec(be, func(x *Node) *Node {
				x = ConvertDType(x, c.dt)
				var sum *Node
				for i := range chain {
					y := v.sum(AddScalar(x, float64(i)))
					if sum == nil {
						sum = y
					} else {
						sum = Add(sum, y)
					}
				}
				return sum
			})
			e.MustExec(x)
			b.Run(fmt.Sprintf("%s%v/%s", c.dt, c.dims, v.name), func(b *testing.B) {
				for range b.N {
					e.MustExec(x)
				}
			})
		}
	}
}
