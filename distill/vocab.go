package distill

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // graph DSL
)

// Full-vocabulary losses (CE, forward/reverse KL, JSD).
//
// The go backend runs element-wise ops one element at a time and its softmax is the fused one,
// so these losses are written to touch the [N, V] logits as few times as possible:
//   - softmax via the fused op (one exp per entry), log-sum-exp recovered from it as
//     lse = x[j] - log p[j] at j = argmax (p[j] >= 1/V, so no underflow);
//   - row sums as products with ones (sumLast: vector lanes, not one value at a time);
//   - the gradient is written by hand (p - onehot, tau (p_s - p_t), ...) and attached with a
//     custom VJP, instead of differentiating the fused softmax through its decomposed form.
//
// The custom gradient is attached with a "carrier": the forward value y0 [N] is computed from
// nodes behind StopGradient, and y = y0 + (c - StopGradient(c)) with c = xid[n, j_n] a finite
// entry of xid = IdentityWithCustomGradient(x). Autodiff reaches xid only through c, so the VJP
// function receives the upstream gradient g [N] in column j_n and returns g ⊙ G for the exact G.

// rowIota returns [N] row numbers.
func rowIota(g *Graph, n int) *Node { return Iota(g, shapes.Make(dtypes.Int32, n), 0) }

// pick returns x[n, idx[n]] for x [N, V] and idx [N] int32: [N].
func pick(x, idx *Node) *Node {
	n := x.Shape().Dimensions[0]
	return Gather(x, Stack([]*Node{rowIota(x.Graph(), n), idx}, -1))
}

// bcastRow broadcasts r [N] to [N, V] explicitly (the backend's implicit broadcast is slow).
func bcastRow(r *Node, v int) *Node {
	n := r.Shape().Dimensions[0]
	return BroadcastToDims(InsertAxes(r, -1), n, v)
}

// softStats holds the softmax of a row-wise logits tensor and its log-sum-exp.
type softStats struct {
	p   *Node // [N, V] softmax
	lse *Node // [N]
	arg *Node // [N] int32 argmax (a finite entry of every valid row)
}

// softmaxStats computes softmax(x) and logsumexp(x) per row with one fused softmax and one ArgMax.
func softmaxStats(x *Node) softStats {
	p := Softmax(x, -1)
	arg := ArgMax(x, 1, dtypes.Int32)
	lse := Sub(pick(x, arg), Log(pick(p, arg)))
	return softStats{p: p, lse: lse, arg: arg}
}

// withCustomRowGradient returns y0 [N] with gradient dy_n/dx[n, :] = grad(g)[n, :]·(1/g_n), i.e.
// grad(g) must return the [N, V] gradient for upstream gradient g [N]. carrier [N] int32 must index
// a finite entry of each row of x. y0 must not depend on x through differentiable nodes.
func withCustomRowGradient(x, y0, carrier *Node, grad func(g *Node) *Node) *Node {
	xid := IdentityWithCustomGradient(x, func(_, v *Node) *Node {
		return grad(pick(v, carrier))
	})
	c := pick(xid, carrier)
	return Add(StopGradient(y0), Sub(c, StopGradient(c)))
}

func checkMask(name string, n int, mask *Node) {
	if mask != nil && (mask.Rank() != 1 || mask.Shape().Dimensions[0] != n) {
		panic(fmt.Sprintf("distill.%s: mask must be [N]=[%d], got %s", name, n, mask.Shape()))
	}
}

// CE returns the per-position cross-entropy [N] float32 of logits [N, V] (the student's full
// vocabulary) against labels [N] (int). Padding rows (mask 0) give 0 and their labels are ignored
// (they may be -100). Stable for -inf entries (masked vocabulary) and huge logits.
func CE(logits, labels, mask *Node) *Node {
	if logits.Rank() != 2 || labels.Rank() != 1 || labels.Shape().Dimensions[0] != logits.Shape().Dimensions[0] {
		panic(fmt.Sprintf("distill.CE: want logits [N, V] and labels [N], got %s and %s", logits.Shape(), labels.Shape()))
	}
	g := logits.Graph()
	n, v := logits.Shape().Dimensions[0], logits.Shape().Dimensions[1]
	checkMask("CE", n, mask)
	x := logits
	if x.DType() != dtypes.Float32 {
		x = ConvertDType(x, dtypes.Float32)
	}
	lab := ConvertDType(labels, dtypes.Int32)
	okLab := LogicalAnd(GreaterOrEqual(lab, ScalarZero(g, dtypes.Int32)), LessThan(lab, Scalar(g, dtypes.Int32, v)))
	if mask != nil {
		okLab = LogicalAnd(okLab, GreaterThan(mask, ScalarZero(g, mask.DType())))
	}
	lab = Where(okLab, lab, ZerosLike(lab))
	st := softmaxStats(x)
	y0 := Sub(st.lse, pick(x, lab))
	y := withCustomRowGradient(x, y0, st.arg, func(gr *Node) *Node {
		// d CE / dx = p - onehot(label)
		d := Mul(st.p, bcastRow(gr, v))
		return ScatterSum(d, Stack([]*Node{rowIota(g, n), lab}, -1), Neg(gr), false, true)
	})
	return applyMask(y, mask)
}

// klPrep prepares teacher and student logits at temperature tau for the full-vocabulary
// divergences: shared vocabulary, float32, divided by tau, -inf clamped to a large negative
// finite value (so that 0·log 0 terms are exactly 0), softmax statistics of both.
func klPrep(name string, t, s, mask *Node, tau float64) (a, b *Node, pt, ps softStats, sIn *Node) {
	checkPair(name, t, s, mask)
	if tau <= 0 {
		panic(fmt.Sprintf("distill.%s: tau %g must be > 0", name, tau))
	}
	t, s = sharedVocab(t, s)
	if t.DType() != dtypes.Float32 {
		t = ConvertDType(t, dtypes.Float32)
	}
	if s.DType() != dtypes.Float32 {
		s = ConvertDType(s, dtypes.Float32)
	}
	t = StopGradient(t)
	a = MaxScalar(MulScalar(t, 1/tau), negClamp)
	b = MaxScalar(MulScalar(s, 1/tau), negClamp)
	return a, b, softmaxStats(a), softmaxStats(b), s
}

// ForwardKL returns tau^2 · KL(softmax(t/tau) || softmax(s/tau)) per position [N] float32.
func ForwardKL(t, s, mask *Node, tau float64) *Node {
	a, b, pt, ps, sIn := klPrep("ForwardKL", t, s, mask, tau)
	v := a.Shape().Dimensions[1]
	// KL = sum p_t (a - b) + lse_b - lse_a   (sum p_t = 1)
	y0 := Add(sumLast(Mul(pt.p, Sub(a, b))), Sub(ps.lse, pt.lse))
	y0 = MulScalar(y0, tau*tau)
	y := withCustomRowGradient(sIn, y0, ps.arg, func(gr *Node) *Node {
		// d/ds = tau (p_s - p_t)
		return Mul(Sub(ps.p, pt.p), bcastRow(MulScalar(gr, tau), v))
	})
	return applyMask(y, mask)
}

// ReverseKL returns tau^2 · KL(softmax(s/tau) || softmax(t/tau)) per position [N] float32.
func ReverseKL(t, s, mask *Node, tau float64) *Node {
	a, b, pt, ps, sIn := klPrep("ReverseKL", t, s, mask, tau)
	v := a.Shape().Dimensions[1]
	ba := Sub(b, a)
	kk := sumLast(Mul(ps.p, ba)) // sum p_s (b - a)
	y0 := MulScalar(Add(kk, Sub(pt.lse, ps.lse)), tau*tau)
	y := withCustomRowGradient(sIn, y0, ps.arg, func(gr *Node) *Node {
		// d/ds = tau · p_s ⊙ ((b - a) - K)
		return Mul(Mul(ps.p, Sub(ba, bcastRow(kk, v))), bcastRow(MulScalar(gr, tau), v))
	})
	return applyMask(y, mask)
}

// JSD returns the Jensen-Shannon divergence 0.5 KL(p_t||m) + 0.5 KL(p_s||m), m = (p_t+p_s)/2,
// of the softmaxes at temperature tau, per position [N] float32, without tau^2.
func JSD(t, s, mask *Node, tau float64) *Node {
	a, b, pt, ps, sIn := klPrep("JSD", t, s, mask, tau)
	g := a.Graph()
	v := a.Shape().Dimensions[1]
	logPt := Sub(a, bcastRow(pt.lse, v))
	logPs := Sub(b, bcastRow(ps.lse, v))
	m := MulScalar(Add(pt.p, ps.p), 0.5)
	logM := Log(Max(m, Scalar(g, dtypes.Float32, 1e-45)))
	// 0.5 sum p_t (log p_t - log m) + 0.5 sum p_s (log p_s - log m); every log is finite, so
	// zero probabilities contribute exactly 0.
	hs := Sub(logPs, logM)
	y0 := MulScalar(Add(sumLast(Mul(pt.p, Sub(logPt, logM))), sumLast(Mul(ps.p, hs))), 0.5)
	y := withCustomRowGradient(sIn, y0, ps.arg, func(gr *Node) *Node {
		// dJSD/dp_s = 0.5 log(p_s/m); through the softmax: p_s ⊙ (h - sum p_s h) / tau.
		h := MulScalar(hs, 0.5)
		eh := sumLast(Mul(ps.p, h))
		return Mul(Mul(ps.p, Sub(h, bcastRow(eh, v))), bcastRow(MulScalar(gr, 1/tau), v))
	})
	return applyMask(y, mask)
}
