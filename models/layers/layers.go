// Package layers holds the small building blocks shared by the model packages (linear, norms,
// activations, rotary embeddings), written over GoMLX graph nodes.
//
// Weights are looked up by their checkpoint names through a Weights function, so each model's
// Forward reads like the paper's equations and its tensor names mirror the safetensors file.
package layers

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/layers/activation"
	gnn "github.com/gomlx/gomlx/ml/nn"
)

// Weights returns the graph node holding the named checkpoint tensor. Loading validates every
// name and shape beforehand, so a lookup of a missing name is a programming error (panic).
type Weights func(name string) *Node

// Linear is PyTorch's nn.Linear: x @ W^T + b, with W laid out [out, in]. b may be nil.
//
// On the pure-Go backend a product below its small-matmul threshold runs as x @ Transpose(W)
// where that is faster (goSmallInputOutputs); the gradient with respect to x then reads W as it
// is (see the DotGeneral gradient in autodiff.go), so only the forward pays the transpose.
//
// A frozen weight may come with its transpose prepared as a graph input (SetTransposed): the
// product then reads that [in, out] copy, the matmul's fast layout for more than 16 outputs,
// whatever the sizes, and the gradient with respect to x reads W, so no step transposes it.
func Linear(x, w, b *Node) *Node {
	if w.Rank() == 2 {
		out, in := w.Shape().Dimensions[0], w.Shape().Dimensions[1]
		if wT := transposedOf(w); wT != nil && out > 16 {
			return gnn.Dense(x, wT, b, compute.DenseLayoutInputOutputs)
		}
		if goSmallInputOutputs(x.Graph(), x.Shape().Size()/in, in, out) {
			return gnn.Dense(x, Transpose(w, 0, 1), b, compute.DenseLayoutInputOutputs)
		}
	}
	return gnn.Dense(x, w, b, compute.DenseLayoutOutputsInput)
}

// twinsKey keys the graph state that pairs weights with their prepared transposes.
type twinsKey struct{}

// twins pairs each weight node W [out, in] with a graph input holding W^T [in, out], both ways.
type twins struct {
	transposed, weight map[*Node]*Node
	fused              map[*Node]fusedTwin // by the first weight
}

// SetTransposed records that wT, a graph input, holds the transpose of the matrix w [out, in]:
// Linear then reads wT in the forward pass and w in the gradient with respect to its input. For
// frozen weights (the teacher's), whose transposes are made once on the host instead of every
// step. w gets no gradient through Linear's forward product (wT is read instead), so only
// weights that are not differentiated may have one.
func SetTransposed(w, wT *Node) {
	if w.Rank() != 2 || wT.Rank() != 2 || w.DType() != wT.DType() ||
		w.Shape().Dimensions[0] != wT.Shape().Dimensions[1] || w.Shape().Dimensions[1] != wT.Shape().Dimensions[0] {
		panic(fmt.Sprintf("layers.SetTransposed: %s is not the transpose of %s", wT.Shape(), w.Shape()))
	}
	t := twinsOf(w.Graph())
	t.transposed[w], t.weight[wT] = wT, w
}

// twinsOf returns g's prepared transposes, attaching an empty set the first time.
func twinsOf(g *Graph) *twins {
	t, _ := g.State(twinsKey{}).(*twins)
	if t == nil {
		t = &twins{transposed: map[*Node]*Node{}, weight: map[*Node]*Node{}, fused: map[*Node]fusedTwin{}}
		g.AttachState(twinsKey{}, t)
	}
	return t
}

// SetFusedTransposed records that wT, a graph input [in, out_1 + ... + out_n], holds the
// transpose of the matrices ws [out_i, in] concatenated along their outputs, and w, a graph
// input, that concatenation itself: LinearsW over those weights is then one product with wT,
// and its gradient with respect to the input one product with w. For frozen weights only (see
// SetTransposed).
func SetFusedTransposed(ws []*Node, wT, w *Node) {
	if len(ws) < 2 {
		panic("layers.SetFusedTransposed: fewer than two weights")
	}
	outs := 0
	for _, x := range ws {
		if x.Rank() != 2 || x.Shape().Dimensions[1] != ws[0].Shape().Dimensions[1] || x.DType() != wT.DType() {
			panic(fmt.Sprintf("layers.SetFusedTransposed: %s does not fit %s", x.Shape(), ws[0].Shape()))
		}
		outs += x.Shape().Dimensions[0]
	}
	in := ws[0].Shape().Dimensions[1]
	if wT.Rank() != 2 || wT.Shape().Dimensions[0] != in || wT.Shape().Dimensions[1] != outs ||
		!w.Shape().Equal(shapes.Make(wT.DType(), outs, in)) {
		panic(fmt.Sprintf("layers.SetFusedTransposed: %s and %s are not the fused %d x %d weights", wT.Shape(), w.Shape(), outs, in))
	}
	t := twinsOf(w.Graph())
	t.fused[ws[0]] = fusedTwin{ws: slices.Clone(ws), wT: wT}
	t.weight[wT] = w
}

// fusedTwin is a prepared fused transpose (SetFusedTransposed).
type fusedTwin struct {
	ws []*Node
	wT *Node
}

// fusedOf returns the prepared fused transpose of exactly ws, in that order, or nil.
func fusedOf(ws []*Node) *Node {
	if len(ws) == 0 {
		return nil
	}
	t, _ := ws[0].Graph().State(twinsKey{}).(*twins)
	if t == nil {
		return nil
	}
	if f, ok := t.fused[ws[0]]; ok && slices.Equal(f.ws, ws) {
		return f.wT
	}
	return nil
}

// CountReachable counts the nodes that the outputs depend on (themselves included) for which
// match is true. A graph may also hold nodes that no output reads (a gradient replaced by the
// rewrites in autodiff.go leaves its original unused); the backend never runs those, and tests
// that check which ops a step runs count with this.
func CountReachable(outputs []*Node, match func(*Node) bool) int {
	seen := map[*Node]bool{}
	count := 0
	stack := slices.Clone(outputs)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n == nil || seen[n] {
			continue
		}
		seen[n] = true
		if match(n) {
			count++
		}
		stack = append(stack, n.Inputs()...)
	}
	return count
}

// transposedOf returns the prepared transpose of w (SetTransposed), or nil.
func transposedOf(w *Node) *Node {
	if t, _ := w.Graph().State(twinsKey{}).(*twins); t != nil {
		return t.transposed[w]
	}
	return nil
}

// weightOf returns the weight whose prepared transpose is wT (SetTransposed), or nil.
func weightOf(wT *Node) *Node {
	if t, _ := wT.Graph().State(twinsKey{}).(*twins); t != nil {
		return t.weight[wT]
	}
	return nil
}

// goSmallMatmulFlops is the size (batch x rows x contracted x columns) below which GoMLX
// compute v0.1.3's pure-Go DotGeneral uses its small-matmul kernels instead of the packed one.
// The two small kernels differ a lot (BenchmarkSmallMatmulLayouts): with the right operand laid
// out [K, M] ("non-transposed") the kernel vectorizes along M and is fast for M > 16; laid out
// [M, K] ("transposed") it vectorizes along K and ends each output with a horizontal sum, which
// is slow for small K and the only vectorized choice for M <= 16.
const goSmallMatmulFlops = 4 << 20

// goSmall reports whether a product of the given sizes runs on the go backend's small kernels.
func goSmall(g *Graph, batch, rows, k, m int) bool {
	return GoBackend(g) && batch*rows*k*m < goSmallMatmulFlops
}

// goSmallInputOutputs reports whether x [rows, in] @ W^T with W [out, in] is faster on the go
// backend as x @ Transpose(W): a small product with more than 16 outputs, and at least as many
// rows as inputs (the transpose moves in*out values; the faster kernel saves time per row).
func goSmallInputOutputs(g *Graph, rows, in, out int) bool {
	return out > 16 && rows >= in && goSmall(g, 1, rows, in, out)
}

// LinearSiLU is SiLU(x @ W^T) (no bias), fused into the matmul's output pass when the backend
// can (one in-place pass instead of a sigmoid and a product). For inference: its gradient
// recomputes the matmul (see qwen2.Config.Differentiated).
func LinearSiLU(x, w *Node) *Node {
	return gnn.Dense(x, w, nil, compute.DenseLayoutOutputsInput, activation.TypeSilu)
}

// SiLU is x * sigmoid(x).
func SiLU(x *Node) *Node { return Mul(x, Sigmoid(x)) }

// LinearW looks up prefix.weight and, if withBias, prefix.bias.
func LinearW(w Weights, prefix string, x *Node, withBias bool) *Node {
	var b *Node
	if withBias {
		b = w(prefix + ".bias")
	}
	return Linear(x, w(prefix+".weight"), b)
}

// LinearsW is LinearW for each prefix over the same input x. When their weights have a prepared
// fused transpose (SetFusedTransposed), it is one product with the concatenated weights, split
// into the outputs; the gradient with respect to x is then one product too (the split's
// gradient is a concatenation, see padsToConcat).
func LinearsW(w Weights, x *Node, withBias bool, prefixes ...string) []*Node {
	ws := make([]*Node, len(prefixes))
	bs := make([]*Node, len(prefixes))
	for i, p := range prefixes {
		ws[i] = w(p + ".weight")
		if withBias {
			bs[i] = w(p + ".bias")
		}
	}
	out := make([]*Node, len(ws))
	f := fusedOf(ws)
	if f == nil {
		for i := range ws {
			out[i] = Linear(x, ws[i], bs[i])
		}
		return out
	}
	var b *Node
	if withBias {
		b = Concatenate(bs, 0)
	}
	y := gnn.Dense(x, f, b, compute.DenseLayoutInputOutputs)
	at := 0
	for i, wi := range ws {
		n := wi.Shape().Dimensions[0]
		out[i] = SliceAxis(y, -1, AxisRange(at, at+n))
		at += n
	}
	return out
}

// LayerNorm over the last axis with weight and bias, as torch.nn.LayerNorm.
func LayerNorm(w Weights, prefix string, x *Node, eps float64) *Node {
	return gnn.LayerNorm(x, []int{-1}, eps, w(prefix+".weight"), w(prefix+".bias"), nil)
}

// RMSNorm as Qwen2RMSNorm: x * rsqrt(mean(x^2) + eps) * weight, in float32. x is multiplied by
// each row's 1/sqrt (GoMLX's Rsqrt has no gradient) rather than divided by its sqrt: on the go
// backend a broadcasting division over [rows, hidden], and the two more of its gradient, cost
// more than products; only the [rows, 1] reciprocal divides.
func RMSNorm(weight, x *Node, eps float64) *Node {
	ms := DivScalar(SumLastAxis(Square(x), true), float64(x.Shape().Dimensions[x.Rank()-1]))
	return Mul(Mul(x, Reciprocal(Sqrt(AddScalar(ms, eps)))), ExpandLeftToRank(weight, x.Rank()))
}

// SumLastAxis is ReduceSum over x's last axis, kept as an axis of size 1 when keep. On the go
// backend it is the product of x with a row of ones instead: that backend's reductions walk an
// index iterator per value (~1.7 ns per float32), while its small matmul sums 16 values per
// instruction, in blocks rather than one by one (BenchmarkSumLastAxis: 16 sums of [128, 128]
// float32, each with the add that makes its input, 0.60 -> 0.23 ms). Other backends and
// non-float dtypes get ReduceSum.
func SumLastAxis(x *Node, keep bool) *Node {
	if x.Rank() < 1 || !x.DType().IsFloat() || x.DType().IsHalfPrecision() || !GoBackend(x.Graph()) {
		if keep {
			return ReduceAndKeep(x, ReduceSum, -1)
		}
		return ReduceSum(x, -1)
	}
	dims := x.Shape().Dimensions
	k := dims[len(dims)-1]
	// ones [1, K] contracted on its last axis: the matmul's "transposed" layout, whose small
	// kernel vectorizes along the contracted axis.
	y := DotGeneral(x, []int{x.Rank() - 1}, nil, Ones(x.Graph(), shapes.Make(x.DType(), 1, k)), []int{1}, nil) // [..., 1]
	if keep {
		return y
	}
	return Reshape(y, dims[:len(dims)-1]...)
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

// ApplyRotary rotates x [B, L, heads, D] by the tables from RotaryCosSin: x cos + rotate_half(x)
// sin, rotate_half(x) = [-x2, x1] for the halves x1, x2 of the last axis.
//
// On the go backend, below its small-matmul threshold, rotate_half is the product x @ R with R
// the [D, D] matrix of 0 and ±1 that moves and negates the halves: exact (each output is one
// input times ±1 plus zeros), one op instead of two slices, a negation and a concatenation,
// and its gradient is one product instead of two zero pads and their sum (the go backend's pad
// and slice walk an index iterator per value). Only an infinite input differs: 0 * inf makes its
// row NaN rather than ±inf.
func ApplyRotary(x, cos, sin *Node) *Node {
	d := x.Shape().Dimensions[x.Rank()-1]
	var rot *Node
	if d%2 == 0 && x.DType().IsFloat() && !x.DType().IsHalfPrecision() && goSmall(x.Graph(), 1, x.Shape().Size()/d, d, d) {
		rot = rotateHalfProduct(x)
	} else {
		x1 := SliceAxis(x, -1, AxisRange(0, d/2))
		x2 := SliceAxis(x, -1, AxisRange(d/2, d))
		rot = Concatenate([]*Node{Neg(x2), x1}, -1)
	}
	return Add(Mul(x, cos), Mul(rot, sin))
}

// rotateHalfProduct is rotate_half(x) = x @ R over the last axis (D even). It is built as
// x @ Transpose(R^T), Linear's form, so that the gradient reads R^T as it is (the matmul's fast
// layout; lhsGradientThroughTranspose).
func rotateHalfProduct(x *Node) *Node {
	d := x.Shape().Dimensions[x.Rank()-1]
	h := d / 2
	rt := make([][]float64, d) // R^T[j][k] = R[k][j]
	for j := range rt {
		rt[j] = make([]float64, d)
		if j < h {
			rt[j][j+h] = -1 // out j < D/2 is -x[j + D/2]
		} else {
			rt[j][j-h] = 1 // out j >= D/2 is x[j - D/2]
		}
	}
	r := Transpose(ConstAsDType(x.Graph(), x.DType(), rt), 0, 1)
	return DotGeneral(x, []int{x.Rank() - 1}, nil, r, []int{0}, nil)
}

// MaskBias turns a boolean attention mask [B, Sq, 1, Skv] (true = may attend) into the additive
// bias Attention takes: 0 where allowed, MaskedScore where not, shaped [B, 1, Sq, Skv]. Build
// it once per forward pass and share it across layers.
func MaskBias(mask *Node) *Node {
	d := mask.Shape().Dimensions
	return boolBias(Reshape(mask, d[0], 1, d[1], d[3]))
}

// CausalBias is the additive causal bias [1, 1, L, L]: position i attends to j <= i.
func CausalBias(g *Graph, l int) *Node {
	return boolBias(Reshape(LowerTriangular(g, l), 1, 1, l, l))
}

// boolBias maps allowed (true) to 0 and masked to MaskedScore, as float32.
func boolBias(allowed *Node) *Node {
	return MulScalar(ConvertDType(LogicalNot(allowed), dtypes.Float32), MaskedScore)
}

// MaskedScore is the additive bias of a masked attention score. It is finite, so a row with
// every key masked (a padding query) gets uniform weights instead of NaNs, and exp of it
// underflows to exactly 0 next to any unmasked score.
const MaskedScore = -1e30

// Attention is scaled dot-product attention over q [B, Sq, H, D] and k, v [B, Skv, KVH, D]
// (grouped-query when KVH < H), with an optional additive bias [B or 1, 1, Sq, Skv] (from
// MaskBias or CausalBias). Returns [B, Sq, H, D].
//
// causal declares that query i is key i (Sq = Skv) and that the bias masks every key j > i
// (CausalBias, or a MaskBias whose mask is causal). On the pure-Go backend long sequences are
// cut into blocks of query rows (attentionParts): each block is an independent chain of
// matmul, softmax and matmul, which its op executor runs concurrently (its softmax and
// element-wise kernels are single-threaded), and with causal a block reads only the keys up to
// its last row, skipping the fully masked ones (exp of MaskedScore is exactly 0 there, so the
// result is the same). The blocks' outputs are concatenated.
func Attention(q, k, v, bias *Node, causal bool) *Node {
	parts := 1
	if GoBackend(q.Graph()) {
		parts = attentionParts(q.Shape().Dimensions[1], causal)
	}
	return attentionBlocks(q, k, v, bias, causal, parts)
}

// GoBackend reports whether the graph's backend is the pure-Go one, whose op executor runs
// independent chains of ops on separate cores while most of its kernels are single-threaded, and
// whose reductions and small matmuls have the layouts chosen here (SumLastAxis, Linear's
// Transpose(W)): Attention's blocks and RowBlocks are for it too. Other backends (XLA) schedule
// and fuse on their own and get the plain graph.
func GoBackend(g *Graph) bool { return IsGoBackend(g.Backend()) }

// IsGoBackend reports whether b is GoMLX's pure-Go backend (see GoBackend).
func IsGoBackend(b compute.Backend) bool { return b.String() == "go" }

// attentionParts is the number of query-row blocks Attention cuts Sq rows into: none below
// 128 rows (graphs of small models, decoding), 2 (one per core on the project's machines)
// without a causal mask, 4 with one (blocks 1..4 read 1/4..4/4 of the keys: 62% of the
// scores of one block).
func attentionParts(sq int, causal bool) int {
	switch {
	case sq < 128:
		return 1
	case causal:
		return 4
	default:
		return 2
	}
}

func attentionBlocks(q, k, v, bias *Node, causal bool, parts int) *Node {
	sq, skv := q.Shape().Dimensions[1], k.Shape().Dimensions[1]
	if causal && sq != skv {
		panic(fmt.Sprintf("layers.Attention: causal attention needs as many queries as keys, got %d and %d", sq, skv))
	}
	if parts <= 1 {
		return attentionCore(q, k, v, bias)
	}
	qd, kd := q.Shape().Dimensions, k.Shape().Dimensions
	if goSmall(q.Graph(), qd[0]*kd[2], qd[1]*qd[2]/kd[2], qd[3], skv) {
		return attentionBlocksHeadsMajor(q, k, v, bias, causal, parts)
	}
	outs := make([]*Node, parts)
	for p := range parts {
		lo, hi := p*sq/parts, (p+1)*sq/parts
		kEnd := skv
		if causal {
			kEnd = hi
		}
		qp, kp, vp := SliceAxis(q, 1, AxisRange(lo, hi)), k, v
		if kEnd < skv {
			kp, vp = SliceAxis(k, 1, AxisRange(0, kEnd)), SliceAxis(v, 1, AxisRange(0, kEnd))
		}
		var bp *Node
		if bias != nil {
			bp = SliceAxis(bias, 2, AxisRange(lo, hi))
			if kEnd < skv {
				bp = SliceAxis(bp, 3, AxisRange(0, kEnd))
			}
		}
		outs[p] = attentionCore(qp, kp, vp, bp)
	}
	return Concatenate(outs, 1)
}

// attentionBlocksHeadsMajor is attentionBlocks for products on the go backend's small-matmul
// kernels: q, k and v go to the heads-major layouts of AttentionScores and AttentionValues once
// (keys and values [B, KVH, D, Skv]), the blocks slice those, and their outputs are joined
// before the one transpose back. Cutting first and transposing per block, as for large
// products, moves the keys and values of a causal block's whole prefix again for every block
// (2.5x their size with 4 blocks) and takes four times the transpose ops, each with the
// executor's fixed cost.
func attentionBlocksHeadsMajor(q, k, v, bias *Node, causal bool, parts int) *Node {
	qd, kd := q.Shape().Dimensions, k.Shape().Dimensions
	b, sq, h, d := qd[0], qd[1], qd[2], qd[3]
	skv, kvh := kd[1], kd[2]
	if h%kvh != 0 {
		panic(fmt.Sprintf("layers.Attention: %d query heads are not a multiple of %d key/value heads", h, kvh))
	}
	g := h / kvh
	qh := Reshape(TransposeAllAxes(MulScalar(q, 1/math.Sqrt(float64(d))), 0, 2, 1, 3), b, kvh, g, sq, d) // head kv*g + j
	kt := TransposeAllAxes(k, 0, 2, 3, 1)                                                                // [B, KVH, D, Skv]
	vt := TransposeAllAxes(v, 0, 2, 3, 1)                                                                // [B, KVH, D, Skv]
	outs := make([]*Node, parts)
	for p := range parts {
		lo, hi := p*sq/parts, (p+1)*sq/parts
		rows, kEnd := hi-lo, skv
		if causal {
			kEnd = hi
		}
		kp, vp := kt, vt
		if kEnd < skv {
			kp, vp = SliceAxis(kt, 3, AxisRange(0, kEnd)), SliceAxis(vt, 3, AxisRange(0, kEnd))
		}
		qp := Reshape(SliceAxis(qh, 3, AxisRange(lo, hi)), b, kvh, g*rows, d)
		scores := DotGeneral(qp, []int{3}, []int{0, 1}, kp, []int{2}, []int{0, 1}) // [B, KVH, G*rows, kEnd]
		if bias != nil {
			bp := SliceAxis(bias, 2, AxisRange(lo, hi))
			if kEnd < skv {
				bp = SliceAxis(bp, 3, AxisRange(0, kEnd))
			}
			scores = Add(Reshape(scores, b, kvh, g, rows, kEnd), Reshape(ConvertDType(bp, scores.DType()), bias.Shape().Dimensions[0], 1, 1, rows, kEnd))
		}
		probs := Reshape(SoftmaxLastAxis(scores), b, kvh, g*rows, kEnd)
		o := DotGeneral(probs, []int{3}, []int{0, 1}, vp, []int{3}, []int{0, 1}) // [B, KVH, G*rows, D]
		outs[p] = Reshape(o, b, kvh, g, rows, d)
	}
	return TransposeAllAxes(Reshape(Concatenate(outs, 3), b, h, sq, d), 0, 2, 1, 3)
}

// attentionCore is Attention over all rows at once. It computes in the heads-major layout,
// where the score tensor needs no transposes, and with the H/KVH query heads of a group
// stacked along the rows, so each matmul is one [G*Sq, D] x [D, Skv] product per (batch, kv
// head). The scale is applied to q (Sq*D values rather than Sq*Skv scores) and the softmax is
// SoftmaxLastAxis: one fused pass where the backend has one.
func attentionCore(q, k, v, bias *Node) *Node {
	return AttentionValues(SoftmaxLastAxis(AttentionScoresBias(q, k, bias)), v, q.Shape().Dimensions[2])
}

// AttentionScoresBias is AttentionScores plus the additive bias [B or 1, 1, Sq, Skv] (nil: none),
// shaped [B, KVH, G, Sq, Skv] when there is a bias.
func AttentionScoresBias(q, k, bias *Node) *Node {
	scores := AttentionScores(q, k) // [B, KVH, G*Sq, Skv]
	if bias == nil {
		return scores
	}
	qd, kd, bd := q.Shape().Dimensions, k.Shape().Dimensions, bias.Shape().Dimensions
	b, sq, h, skv, kvh := qd[0], qd[1], qd[2], kd[1], kd[2]
	scores = Reshape(scores, b, kvh, h/kvh, sq, skv)
	return Add(scores, Reshape(ConvertDType(bias, scores.DType()), bd[0], 1, 1, sq, skv))
}

// AttentionScores is the first half of attentionCore: q [B, Sq, H, D] (scaled by 1/sqrt(D)) times
// k [B, Skv, KVH, D] in the heads-major layout, [B, KVH, G*Sq, Skv] with G = H/KVH (query head
// kv*G + j at rows j*Sq..). Inference on the go backend runs the softmax between the halves on
// the host (models/hostops).
func AttentionScores(q, k *Node) *Node {
	qd, kd := q.Shape().Dimensions, k.Shape().Dimensions
	b, sq, h, d := qd[0], qd[1], qd[2], qd[3]
	kvh := kd[2]
	if h%kvh != 0 {
		panic(fmt.Sprintf("layers.Attention: %d query heads are not a multiple of %d key/value heads", h, kvh))
	}
	q = MulScalar(q, 1/math.Sqrt(float64(d)))
	q = Reshape(TransposeAllAxes(q, 0, 2, 1, 3), b, kvh, (h/kvh)*sq, d) // heads h = kv*g + j
	skv := kd[1]
	if skv > 16 && goSmall(q.Graph(), b*kvh, (h/kvh)*sq, d, skv) {
		// Keys laid out [B, KVH, D, Skv] (the same one transpose): the go backend's small
		// matmul then vectorizes along the keys instead of summing D-long dot products.
		return DotGeneral(q, []int{3}, []int{0, 1}, TransposeAllAxes(k, 0, 2, 3, 1), []int{2}, []int{0, 1})
	}
	return Einsum("bkqd,bksd->bkqs", q, TransposeAllAxes(k, 0, 2, 1, 3))
}

// AttentionValues is the second half of attentionCore: the attention weights p (any shape with
// AttentionScores' B*KVH*G*Sq*Skv values) times v [B, Skv, KVH, D], for h query heads:
// [B, Sq, H, D].
func AttentionValues(p, v *Node, h int) *Node {
	vd := v.Shape().Dimensions
	b, skv, kvh, d := vd[0], vd[1], vd[2], vd[3]
	gsq := p.Shape().Size() / (b * kvh * skv)
	var o *Node
	if goSmall(p.Graph(), b*kvh, gsq, skv, d) {
		// Values laid out [B, KVH, D, Skv] (the same one transpose): the gradient of p, dO V^T,
		// is then the go backend's fast small-matmul layout (vectorized along the keys), and
		// for D <= 16 so is the product itself.
		o = DotGeneral(Reshape(p, b, kvh, gsq, skv), []int{3}, []int{0, 1}, TransposeAllAxes(v, 0, 2, 3, 1), []int{3}, []int{0, 1})
	} else {
		o = Einsum("bkqs,bksd->bkqd", Reshape(p, b, kvh, gsq, skv), TransposeAllAxes(v, 0, 2, 1, 3))
	}
	return TransposeAllAxes(Reshape(o, b, h, gsq/(h/kvh), d), 0, 2, 1, 3)
}

// rowBlocksMinValues is the smallest first input (batch x positions x width) RowBlocks splits.
const rowBlocksMinValues = 1 << 16

// RowBlocks applies fn, a function of inputs [B, L, ...] that treats each of the L positions on
// its own (projections, norms, an MLP block, rotary embeddings), to two blocks of positions
// and concatenates each of its outputs along L. The blocks are independent chains, which the
// go backend's op executor runs concurrently: its element-wise kernels (activations, bias adds,
// norms) are single-threaded, and one block's run beside the other's (BenchmarkRowBlocks:
// Qwen2.5-0.5B's MLP block at 800 positions 1.25x faster, SigLIP-so400m's 1.03x). Below 128
// positions, below rowBlocksMinValues values in inputs[0], or on a backend other than the
// pure-Go one, it is fn(inputs): for small widths the second chain's ops (slices, concatenations
// and the ops of fn itself, each with a fixed cost in the executor) cost more than running
// the element-wise kernels on one core (bench-step --preset small, widths 64-256 at 128
// positions: 0.040 -> 0.036 s per step).
func RowBlocks(fn func(in []*Node) []*Node, inputs ...*Node) []*Node {
	l := inputs[0].Shape().Dimensions[1]
	if l < 128 || inputs[0].Shape().Size() < rowBlocksMinValues || !GoBackend(inputs[0].Graph()) {
		return fn(inputs)
	}
	var blocks [][]*Node
	for _, r := range [][2]int{{0, l / 2}, {l / 2, l}} {
		in := make([]*Node, len(inputs))
		for i, x := range inputs {
			if x.Shape().Dimensions[1] != l {
				panic(fmt.Sprintf("layers.RowBlocks: input %d has %d positions, input 0 has %d", i, x.Shape().Dimensions[1], l))
			}
			in[i] = SliceAxis(x, 1, AxisRange(r[0], r[1]))
		}
		blocks = append(blocks, fn(in))
	}
	out := make([]*Node, len(blocks[0]))
	for i := range out {
		out[i] = Concatenate([]*Node{blocks[0][i], blocks[1][i]}, 1)
	}
	return out
}

// SoftmaxLastAxis is softmax over the last axis. Where the backend has a fused softmax it runs
// that single pass forward, and its gradient is the closed form y * (dy - sum(dy * y)) over the
// forward's output, instead of the autodiff of the decomposed max/exp/sum/div graph (which
// would have to be computed as well).
func SoftmaxLastAxis(x *Node) *Node {
	if !x.Graph().Backend().Capabilities().Operations[compute.OpTypeFusedSoftmax] {
		return Softmax(x, -1)
	}
	var y *Node
	out, fused := InternalFusedOpCaller(
		func() *Node { y = BackendFusedSoftmax(x, x.Rank()-1); return y },
		func() *Node {
			return IdentityWithCustomGradient(x, func(_, dy *Node) *Node {
				return Mul(y, Sub(dy, SumLastAxis(Mul(dy, y), true)))
			})
		},
		true)
	if !fused {
		return Softmax(x, -1)
	}
	return out
}
