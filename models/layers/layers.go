// Package layers holds the small building blocks shared by the model packages (linear, norms,
// activations, rotary embeddings), written over GoMLX graph nodes.
//
// Weights are looked up by their checkpoint names through a Weights function, so each model's
// Forward reads like the paper's equations and its tensor names mirror the safetensors file.
package layers

import (
	"math"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/layers/attention"
	gnn "github.com/gomlx/gomlx/ml/nn"
)

// Weights returns the graph node holding the named checkpoint tensor. Loading validates every
// name and shape beforehand, so a lookup of a missing name is a programming error (panic).
type Weights func(name string) *Node

// Linear is PyTorch's nn.Linear: x @ W^T + b, with W laid out [out, in]. b may be nil.
func Linear(x, w, b *Node) *Node {
	return gnn.Dense(x, w, b, compute.DenseLayoutOutputsInput)
}

// LinearSiLU is SiLU(x @ W^T) (no bias), fused into the matmul's output pass when the backend
// can (one in-place pass instead of a sigmoid and a product).
func LinearSiLU(x, w *Node) *Node {
	return gnn.Dense(x, w, nil, compute.DenseLayoutOutputsInput, activation.TypeSilu)
}

// LinearW looks up prefix.weight and, if withBias, prefix.bias.
func LinearW(w Weights, prefix string, x *Node, withBias bool) *Node {
	var b *Node
	if withBias {
		b = w(prefix + ".bias")
	}
	return Linear(x, w(prefix+".weight"), b)
}

// LayerNorm over the last axis with weight and bias, as torch.nn.LayerNorm.
func LayerNorm(w Weights, prefix string, x *Node, eps float64) *Node {
	return gnn.LayerNorm(x, []int{-1}, eps, w(prefix+".weight"), w(prefix+".bias"), nil)
}

// RMSNorm as Qwen2RMSNorm: x * rsqrt(mean(x^2) + eps) * weight, in float32.
func RMSNorm(weight, x *Node, eps float64) *Node {
	ms := ReduceAndKeep(Square(x), ReduceMean, -1)
	return Mul(Div(x, Sqrt(AddScalar(ms, eps))), ExpandLeftToRank(weight, x.Rank()))
}

// GeluTanh is PyTorch's gelu(approximate="tanh") (SigLIP's gelu_pytorch_tanh):
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). It uses the backend's fused (parallel) kernel
// when there is one; gradients come from the decomposed form.
func GeluTanh(x *Node) *Node {
	out, _ := InternalFusedOpCaller(
		func() *Node { return BackendFusedGelu(x, false) },
		func() *Node {
			inner := MulScalar(Add(x, MulScalar(Mul(Square(x), x), 0.044715)), math.Sqrt(2/math.Pi))
			return Mul(x, MulScalar(OnePlus(Tanh(inner)), 0.5))
		},
		true)
	return out
}

// GeluErf is the exact GELU, 0.5 x (1 + erf(x / sqrt 2)).
func GeluErf(x *Node) *Node { return activation.Gelu(x) }

// RotaryCosSin returns cos and sin tables [B, L, 1, headDim] for the rotate-half RoPE used by
// Qwen2/Llama: angle(p, i) = p * theta^(-2i/headDim), repeated for both halves.
// positions is an int32 node [B, L].
func RotaryCosSin(positions *Node, headDim int, theta float64) (cos, sin *Node) {
	g := positions.Graph()
	half := headDim / 2
	invFreq := make([]float32, headDim)
	for i := 0; i < half; i++ {
		// Computed in float32 as transformers does: 1 / theta^(2i/d).
		f := float32(1.0 / math.Pow(theta, float64(2*i)/float64(headDim)))
		invFreq[i], invFreq[i+half] = f, f
	}
	freqs := Const(g, invFreq)                                     // [D]
	pos := ConvertDType(positions, freqs.DType())                  // [B, L]
	angles := Mul(InsertAxes(pos, -1), ExpandLeftToRank(freqs, 3)) // [B, L, D]
	angles = InsertAxes(angles, 2)                                 // [B, L, 1, D]
	return Cos(angles), Sin(angles)
}

// ApplyRotary rotates x [B, L, heads, D] by the tables from RotaryCosSin.
func ApplyRotary(x, cos, sin *Node) *Node {
	d := x.Shape().Dimensions[x.Rank()-1]
	x1 := SliceAxis(x, -1, AxisRange(0, d/2))
	x2 := SliceAxis(x, -1, AxisRange(d/2, d))
	rot := Concatenate([]*Node{Neg(x2), x1}, -1)
	return Add(Mul(x, cos), Mul(rot, sin))
}

// Attention runs attention on [B, S, H, D] inputs in the heads-major layout, where the
// score tensor [B, H, Sq, Skv] needs no transposes (the go backend's attention is decomposed
// into matmuls, and BSHD scores cost two large transposes per layer). A mask is [B, Sq, 1, Skv]
// (true = attend). Returns [B, S, H, D].
func Attention(q, k, v *Node, opts attention.CoreOptions) *Node {
	q, k, v = TransposeAllAxes(q, 0, 2, 1, 3), TransposeAllAxes(k, 0, 2, 1, 3), TransposeAllAxes(v, 0, 2, 1, 3)
	if m := opts.AttentionMask; m != nil {
		d := m.Shape().Dimensions
		opts.AttentionMask = Reshape(m, d[0], 1, d[1], d[3]) // [B, Sq, 1, Skv] -> [B, 1, Sq, Skv]
	}
	o, _ := attention.Core(q, k, v, attention.LayoutBHSD, opts)
	return TransposeAllAxes(o, 0, 2, 1, 3)
}
