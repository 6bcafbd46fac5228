package distill

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // graph DSL
)

// DBiLDOptions configures DBiLD (spec "DBiLD"): temperature, candidate window M (capped at the
// vocabulary), and the knee's clamp [KMin, KMax] (KMax <= 0 means M).
type DBiLDOptions struct {
	Tau    float64
	Window int
	KMin   int
	KMax   int
}

// DefaultDBiLDOptions returns the spec's defaults: tau 3, window 64, k_min 4, k_max = M (64).
func DefaultDBiLDOptions() DBiLDOptions { return DBiLDOptions{Tau: 3, Window: 64, KMin: 4, KMax: 64} }

// negClamp replaces -inf (and anything below) by a large negative finite value, so that pair
// differences stay finite. 2^122 keeps differences of 1e30-scale logits exact enough and far
// from float32 overflow.
const negClamp = -5.316911983139664e36 // -2^122

// sharedVocab cuts t and s to their first min(V_T, V_S) columns.
func sharedVocab(t, s *Node) (*Node, *Node) {
	vt, vs := t.Shape().Dimensions[1], s.Shape().Dimensions[1]
	v := min(vt, vs)
	if vt != v {
		t = Slice(t, AxisRange(), AxisRange(0, v))
	}
	if vs != v {
		s = Slice(s, AxisRange(), AxisRange(0, v))
	}
	return t, s
}

func checkPair(name string, t, s, mask *Node) {
	if t.Rank() != 2 || s.Rank() != 2 || t.Shape().Dimensions[0] != s.Shape().Dimensions[0] {
		panic(fmt.Sprintf("distill.%s: teacher and student logits must be [N, V_T], [N, V_S], got %s and %s",
			name, t.Shape(), s.Shape()))
	}
	if mask != nil && (mask.Rank() != 1 || mask.Shape().Dimensions[0] != t.Shape().Dimensions[0]) {
		panic(fmt.Sprintf("distill.%s: mask must be [N], got %s", name, mask.Shape()))
	}
}

// gatherRows returns x[n, idx[n, j]] for x [N, V] and idx [N, K] int32: [N, K]. Differentiable in x.
func gatherRows(x, idx *Node) *Node {
	g := x.Graph()
	n, k := idx.Shape().Dimensions[0], idx.Shape().Dimensions[1]
	rows := Iota(g, shapes.Make(dtypes.Int32, n, k), 0)
	return Gather(x, Stack([]*Node{rows, idx}, -1))
}

// gatherBoth gathers x at two index sets [N, K] with one Gather, so that the backward pass scatters
// into one [N, V] gradient buffer instead of two.
func gatherBoth(x, i1, i2 *Node) (*Node, *Node) {
	k := i1.Shape().Dimensions[1]
	both := gatherRows(x, Concatenate([]*Node{i1, i2}, 1))
	return Slice(both, AxisRange(), AxisRange(0, k)), Slice(both, AxisRange(), AxisRange(k, 2*k))
}

// pairKL computes, per row, the KL divergence between the pair-difference distributions of the
// teacher values tv and the student values sv ([N, M], both in the leader's descending order):
// P = softmax over pairs i < j < k of (tv_i - tv_j)/tau, Q likewise from sv. reverse selects
// KL(Q || P) (DBiLD), otherwise KL(P || Q) (BiLD). k [N] int32 is the number of leading entries
// used. Rows with k < 2 have no pairs and give 0. Computed in float64; result [N] float64.
//
// Only sv gets a gradient. It is written by hand (A, B the pair logits, D = B - A):
//
//	reverse: dL/dB = Q ⊙ (D - sum Q D);  forward: dL/dB = Q - P;
//	dL/dsv_i = (sum_j dL/dB_ij - sum_j dL/dB_ji) / tau,
//
// and attached as y = y0 + sum_i w_i (sv_i - StopGradient(sv_i)) with y0 and w = dL/dsv behind
// StopGradient, which keeps autodiff out of the [N, M, M] graph.
func pairKL(tv, sv, k *Node, tau float64, reverse bool) *Node {
	g := tv.Graph()
	n, m := tv.Shape().Dimensions[0], tv.Shape().Dimensions[1]
	if m < 2 {
		return Zeros(g, shapes.Make(dtypes.Float64, n))
	}
	tv = MaxScalar(ConvertDType(StopGradient(tv), dtypes.Float64), negClamp)
	sv = MaxScalar(ConvertDType(sv, dtypes.Float64), negClamp)
	svc := StopGradient(sv)
	// Rows without pairs use the pair (0, 1) so that nothing is NaN; their result is zeroed below.
	hasPairs := GreaterOrEqual(k, Scalar(g, dtypes.Int32, 2))
	kk := Where(hasPairs, k, BroadcastToDims(Scalar(g, dtypes.Int32, 2), n))
	ii := Iota(g, shapes.Make(dtypes.Int32, n, m, m), 1)
	jj := Iota(g, shapes.Make(dtypes.Int32, n, m, m), 2)
	valid := LogicalAnd(LessThan(ii, jj), LessThan(jj, BroadcastToDims(Reshape(kk, n, 1, 1), n, m, m)))
	bc := func(r *Node) *Node { return BroadcastToDims(Reshape(r, n, 1, 1), n, m, m) } // [N] -> [N, M, M]
	diff := func(v *Node) *Node {
		a := BroadcastToDims(Reshape(v, n, m, 1), n, m, m)
		b := BroadcastToDims(Reshape(v, n, 1, m), n, m, m)
		return MulScalar(Sub(a, b), 1/tau)
	}
	A, B := diff(tv), diff(svc) // [N, M, M]
	negInf := BroadcastToDims(Infinity(g, dtypes.Float64, -1), n, m, m)
	// logZ and the softmax over the valid pairs.
	soft := func(x *Node) (logZ, p *Node) {
		xm := Where(valid, x, negInf)
		mx := ReduceMax(xm, 1, 2)
		e := Exp(Sub(xm, bc(mx)))
		s := ReduceSum(e, 1, 2)
		return Add(mx, Log(s)), Div(e, bc(s))
	}
	lzA, P := soft(A)
	lzB, Q := soft(B)
	var y0, dB *Node
	if reverse { // sum Q (log Q - log P) = sum Q (B - A) - lzB + lzA
		kq := ReduceSum(Mul(Q, Sub(B, A)), 1, 2)
		y0 = Add(kq, Sub(lzA, lzB))
		dB = Mul(Q, Sub(Sub(B, A), bc(kq)))
	} else { // sum P (log P - log Q) = sum P (A - B) - lzA + lzB
		y0 = Add(ReduceSum(Mul(P, Sub(A, B)), 1, 2), Sub(lzB, lzA))
		dB = Sub(Q, P)
	}
	w := MulScalar(Sub(ReduceSum(dB, 2), ReduceSum(dB, 1)), 1/tau) // [N, M]
	y := Add(y0, ReduceSum(Mul(StopGradient(w), Sub(sv, svc)), 1))
	return Where(hasPairs, y, ZerosLike(y))
}

// DBiLDTerms computes the two DBiLD terms per position and the knees: lt = L_t (teacher-led),
// ls = L_s (student-led), both [N] float32, and kt, ks [N] int32. Padding rows (mask 0) give 0.
// See DBiLD.
func DBiLDTerms(t, s, mask *Node, opts DBiLDOptions) (lt, ls, kt, ks *Node) {
	checkPair("DBiLD", t, s, mask)
	t, s = sharedVocab(t, s)
	v := t.Shape().Dimensions[1]
	m := min(opts.Window, v)
	if m < 1 {
		panic(fmt.Sprintf("distill.DBiLD: window %d must be >= 1", opts.Window))
	}
	if opts.Tau <= 0 {
		panic(fmt.Sprintf("distill.DBiLD: tau %g must be > 0", opts.Tau))
	}
	kMax := opts.KMax
	if kMax <= 0 || kMax > m {
		kMax = m
	}
	t = StopGradient(t)
	// Teacher-led: I = top-M of t in teacher order; a = t[I], b = s[I].
	// Student-led: J = top-M of s (no gradient in the selection); c = s[J], e = t[J].
	iT := TopMIndices(t, m)
	jS := TopMIndices(s, m)
	a, e := gatherBoth(t, iT, jS)
	b, c := gatherBoth(s, iT, jS)
	kt = KneeK(a, opts.KMin, kMax)
	lt = pairKL(a, b, kt, opts.Tau, true)
	ks = KneeK(c, opts.KMin, kMax)
	ls = pairKL(e, c, ks, opts.Tau, true)
	lt = applyMask(ConvertDType(lt, dtypes.Float32), mask)
	ls = applyMask(ConvertDType(ls, dtypes.Float32), mask)
	return
}

// DBiLD returns the per-position Dynamic Bi-directional Logits Difference loss [N] float32
// (spec "DBiLD"): L_t + L_s with knee-selected k per position and direction, reverse KL over the
// pair-difference distributions, no tau^2. t [N, V_T] (teacher, constant), s [N, V_S] (student),
// mask [N] float (1 real, 0 padding; nil means all real). The first min(V_T, V_S) logits are used.
func DBiLD(t, s, mask *Node, opts DBiLDOptions) *Node {
	lt, ls, _, _ := DBiLDTerms(t, s, mask, opts)
	return Add(lt, ls)
}

// BiLD returns the per-position BiLD loss [N] float32 (Li et al. 2024; spec "DBiLD", last
// paragraph): fixed k (8 in the paper) and forward KL over the pair-difference distributions,
// teacher-led plus student-led, no tau^2.
func BiLD(t, s, mask *Node, k int, tau float64) *Node {
	checkPair("BiLD", t, s, mask)
	t, s = sharedVocab(t, s)
	g := t.Graph()
	n, v := t.Shape().Dimensions[0], t.Shape().Dimensions[1]
	k = min(k, v)
	if k < 1 {
		panic(fmt.Sprintf("distill.BiLD: k=%d must be >= 1", k))
	}
	t = StopGradient(t)
	kN := func(top *Node) *Node { // k capped at the finite head (as for DBiLD)
		finite := ConvertDType(GreaterThan(top, Infinity(g, top.DType(), -1)), dtypes.Int32)
		return MinScalar(ReduceSum(finite, 1), int32(k))
	}
	_ = n
	iT := TopMIndices(t, k)
	jS := TopMIndices(s, k)
	a, e := gatherBoth(t, iT, jS)
	b, c := gatherBoth(s, iT, jS)
	lt := pairKL(a, b, kN(a), tau, false)
	ls := pairKL(e, c, kN(StopGradient(c)), tau, false)
	return applyMask(ConvertDType(Add(lt, ls), dtypes.Float32), mask)
}

// applyMask zeroes padding rows (mask <= 0). Where, not a product, so that padding rows cannot
// leak NaN or Inf into the result.
func applyMask(x, mask *Node) *Node {
	if mask == nil {
		return x
	}
	keep := GreaterThan(mask, ScalarZero(mask.Graph(), mask.DType()))
	return Where(keep, x, ZerosLike(x))
}
