package distill

import (
	"fmt"
	"slices"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // graph DSL

	"github.com/switchkd/switchkd/models/layers"
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
// Only sv gets a gradient. It is written by hand (A, B the pair logits, D = B - A, δ = the
// difference of the scaled values, so D_ij = δ_i - δ_j):
//
//	reverse: dL/dB = Q ⊙ (D - sum Q D);  forward: dL/dB = Q - P;
//	dL/dsv_i = (sum_{j>i} dL/dB_ij - sum_{j<i} dL/dB_ji) / tau,
//
// and attached as y = y0 + sum_i w_i (sv_i - StopGradient(sv_i)) with y0 and w = dL/dsv behind
// StopGradient, which keeps autodiff out of the pair arithmetic. Both only need each pair
// distribution's row and column marginals and their δ-weighted versions (pairMarginals).
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
	y0, w := pairTerms(MulScalar(tv, 1/tau), MulScalar(svc, 1/tau), kk, tau, reverse)
	y := Add(StopGradient(y0), sumLast(Mul(StopGradient(w), Sub(sv, svc))))
	return Where(hasPairs, y, ZerosLike(y))
}

// pairTerms returns the divergence y0 [N] and its gradient w [N, M] in sv from alpha = tv/tau
// and beta = sv/tau ([N, M] float64, finite), pairs i < j < kk.
func pairTerms(alpha, beta, kk *Node, tau float64, reverse bool) (y0, w *Node) {
	g := alpha.Graph()
	n, m := alpha.Shape().Dimensions[0], alpha.Shape().Dimensions[1]
	head := LessThan(Iota(g, shapes.Make(dtypes.Int32, n, m), 1), BroadcastToDims(InsertAxes(kk, -1), n, m))
	delta := Sub(beta, alpha)
	// Pair differences do not see a common shift of δ; centring it keeps the sums below small.
	delta = Where(head, Sub(delta, BroadcastToDims(Slice(delta, AxisRange(), AxisRange(0, 1)), n, m)), ZerosLike(delta))
	q := pairMarginals(beta, delta, kk)
	if reverse { // KL(Q || P) = sum Q D - lzB + lzA
		lzA := pairMarginals(alpha, nil, kk).lz
		kq := Sub(sumLast(Mul(delta, q.rowMass)), sumLast(Mul(delta, q.colMass))) // sum Q D
		y0 = Add(kq, Sub(lzA, q.lz))
		kqc := BroadcastToDims(InsertAxes(kq, -1), n, m)
		rows := Sub(Mul(Sub(delta, kqc), q.rowMass), q.rowDelta) // sum_{j>i} Q_ij (D_ij - KQ)
		cols := Sub(q.colDelta, Mul(Add(delta, kqc), q.colMass)) // sum_{i<j} Q_ij (D_ij - KQ)
		w = MulScalar(Sub(rows, cols), 1/tau)
	} else { // KL(P || Q) = -sum P D - lzA + lzB
		p := pairMarginals(alpha, delta, kk)
		kp := Sub(sumLast(Mul(delta, p.rowMass)), sumLast(Mul(delta, p.colMass)))
		y0 = Sub(Sub(q.lz, p.lz), kp)
		w = MulScalar(Sub(Sub(q.rowMass, p.rowMass), Sub(q.colMass, p.colMass)), 1/tau)
	}
	return y0, w
}

// sumLast sums x over its last axis (layers.SumLastAxis: a product with ones on the go backend).
func sumLast(x *Node) *Node { return layers.SumLastAxis(x, false) }

// sumFrom sums x over its axes from axis on: [d_0, ..., d_axis-1].
func sumFrom(x *Node, axis int) *Node {
	dims := x.Shape().Dimensions
	return sumLast(Reshape(x, append(slices.Clone(dims[:axis]), -1)...))
}

// pairBlock is the block size of pairMarginals.
const pairBlock = 8

// marginals of the distribution pi_ij = exp(x_i - x_j) / Z over the pairs i < j of a row's head:
// lz = log Z [N]; rowMass_i = sum_{j>i} pi_ij, colMass_j = sum_{i<j} pi_ij, rowDelta_i =
// sum_{j>i} pi_ij δ_j and colDelta_j = sum_{i<j} pi_ij δ_i ([N, M]; the δ ones only when δ is
// given). The head of a row is its first kk entries.
type marginals struct{ lz, rowMass, colMass, rowDelta, colDelta *Node }

// pairMarginals computes the marginals without the [N, M, M] pair matrix: the row is cut into
// blocks of pairBlock entries. Pairs inside a block are taken one by one ([N, B, b, b]). For a
// pair across blocks p < q, exp(x_i - x_j) = exp(c_p - d_q) e_i f_j with c_p the max of block
// p, d_q the min of block q, e_i = exp(x_i - c_p) and f_j = exp(d_q - x_j) in (0, 1], so the
// cross pairs reduce to per-block sums of e, f, eδ and fδ and a [N, B, B] block-pair matrix.
// Every factor is taken against its own block's max or min, which is in the same block and so
// precedes (or follows) every partner of the other block: an e_i or f_j that underflows belongs
// to a pair term at most e^-708 times another term of the same sum. So any finite logits work,
// including the 2^122-scale differences of clamped -inf (no cap on the spread), in O(M·b + M²/b²).
func pairMarginals(x, delta, kk *Node) marginals {
	g := x.Graph()
	n, m := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	bs := min(pairBlock, m)
	nb := (m + bs - 1) / bs
	if mp := nb * bs; mp != m { // pad to whole blocks, outside the head
		x = Pad(x, ScalarZero(g, dtypes.Float64), padAxis(0, 0), padAxis(0, mp-m))
		if delta != nil {
			delta = Pad(delta, ScalarZero(g, dtypes.Float64), padAxis(0, 0), padAxis(0, mp-m))
		}
	}
	head := LessThan(Iota(g, shapes.Make(dtypes.Int32, n, nb*bs), 1), BroadcastToDims(InsertAxes(kk, -1), n, nb*bs))
	f64 := dtypes.Float64
	negInf := Infinity(g, f64, -1)
	x3, h3 := Reshape(x, n, nb, bs), Reshape(head, n, nb, bs)
	// Pairs inside a block: [N, B, b (i), b (j)]; the head is a prefix, so i < j and j in the head
	// is enough.
	x4i := BroadcastToDims(Reshape(x3, n, nb, bs, 1), n, nb, bs, bs)
	x4j := BroadcastToDims(Reshape(x3, n, nb, 1, bs), n, nb, bs, bs)
	ordered := LessThan(Iota(g, shapes.Make(dtypes.Int32, n, nb, bs, bs), 2), Iota(g, shapes.Make(dtypes.Int32, n, nb, bs, bs), 3))
	valid := LogicalAnd(ordered, BroadcastToDims(Reshape(h3, n, nb, 1, bs), n, nb, bs, bs))
	within := Where(valid, Sub(x4i, x4j), BroadcastToDims(negInf, n, nb, bs, bs))
	if nb == 1 { // one block: the pairs one by one, nothing across
		mx := ReduceMax(Reshape(within, n, bs*bs), 1)
		ew := Exp(Sub(within, BroadcastToDims(Reshape(mx, n, 1, 1, 1), n, 1, bs, bs)))
		z := sumFrom(ew, 1)
		return blockMarginals(Add(mx, Log(z)), z, ew, delta, m, nil)
	}
	// Per-block factors. Blocks with no head entry get c = d = 0 and e = f = 0.
	nonEmpty := Reshape(Slice(h3, AxisRange(), AxisRange(), AxisRange(0, 1)), n, nb) // head is a prefix
	c := ReduceMax(Where(h3, x3, BroadcastToDims(negInf, n, nb, bs)), 2)
	d := ReduceMin(Where(h3, x3, BroadcastToDims(Infinity(g, f64, 1), n, nb, bs)), 2)
	zeroB := Zeros(g, shapes.Make(f64, n, nb))
	c, d = Where(nonEmpty, c, zeroB), Where(nonEmpty, d, zeroB)
	zero3 := Zeros(g, shapes.Make(f64, n, nb, bs))
	e := Where(h3, Exp(Sub(x3, BroadcastToDims(InsertAxes(c, -1), n, nb, bs))), zero3)
	f := Where(h3, Exp(Sub(BroadcastToDims(InsertAxes(d, -1), n, nb, bs), x3)), zero3)
	eSum, fSum := sumLast(e), sumLast(f) // [N, B], >= 1 on non-empty blocks
	// Block pairs p < q, both non-empty: their pairs sum to exp(c_p - d_q) eSum_p fSum_q.
	pq := LogicalAnd(
		LessThan(Iota(g, shapes.Make(dtypes.Int32, n, nb, nb), 1), Iota(g, shapes.Make(dtypes.Int32, n, nb, nb), 2)),
		LogicalAnd(BroadcastToDims(Reshape(nonEmpty, n, nb, 1), n, nb, nb), BroadcastToDims(Reshape(nonEmpty, n, 1, nb), n, nb, nb)))
	cd := Sub(BroadcastToDims(Reshape(c, n, nb, 1), n, nb, nb), BroadcastToDims(Reshape(d, n, 1, nb), n, nb, nb))
	cd = Where(pq, cd, BroadcastToDims(negInf, n, nb, nb))
	// Z relative to mx, the largest in-block pair logit or c_p - d_q (the largest term is then
	// >= 1 and none exceeds 64, so z = Z e^-mx is in [1, number of pairs]). The probabilities
	// divide by z rather than subtract log z: at 2^122-scale logits mx + log z rounds to mx.
	mx := Max(ReduceMax(Reshape(within, n, nb*bs*bs), 1), ReduceMax(cd, 1, 2))
	ew := Exp(Sub(within, BroadcastToDims(Reshape(mx, n, 1, 1, 1), n, nb, bs, bs))) // 0 off the pairs
	ecd := Exp(Sub(cd, BroadcastToDims(Reshape(mx, n, 1, 1), n, nb, nb)))           // 0 off the block pairs
	ef := Mul(BroadcastToDims(Reshape(eSum, n, nb, 1), n, nb, nb), BroadcastToDims(Reshape(fSum, n, 1, nb), n, nb, nb))
	z := Add(sumFrom(ew, 1), sumFrom(Mul(ecd, ef), 1))
	lz := Add(mx, Log(z))
	// The marginals are sums of ew (inside blocks) and of the block-pair weights
	// ecd = exp(c_p - d_q - mx) (across), all divided by z: the division is done once, on the sums.
	rowsOf := func(v *Node) *Node { return sumLast(Mul(ecd, BroadcastToDims(Reshape(v, n, 1, nb), n, nb, nb))) }      // sum_{q>p} ecd_pq v_q
	colsOf := func(v *Node) *Node { return ReduceSum(Mul(ecd, BroadcastToDims(Reshape(v, n, nb, 1), n, nb, nb)), 1) } // sum_{p<q} ecd_pq v_p
	per := func(v *Node) *Node { return BroadcastToDims(InsertAxes(v, -1), n, nb, bs) }                               // [N, B] -> [N, B, b]
	// The cross-block part of each marginal, [N, B, b].
	cross := &marginals{rowMass: Mul(e, per(rowsOf(fSum))), colMass: Mul(f, per(colsOf(eSum)))}
	if delta != nil {
		d3 := Reshape(delta, n, nb, bs)
		cross.rowDelta = Mul(e, per(rowsOf(sumLast(Mul(f, d3)))))
		cross.colDelta = Mul(f, per(colsOf(sumLast(Mul(e, d3)))))
	}
	return blockMarginals(lz, z, ew, delta, m, cross)
}

// blockMarginals sums the in-block pair weights ew [N, B, b, b] into the marginals, adds the
// cross-block parts ([N, B, b] each, on the same scale; nil for a single block), cuts them to the
// window's m entries and divides them by z [N] (the pair weights' total).
func blockMarginals(lz, z, ew, delta *Node, m int, cross *marginals) marginals {
	n, nb, bs := ew.Shape().Dimensions[0], ew.Shape().Dimensions[1], ew.Shape().Dimensions[2]
	rz := BroadcastToDims(InsertAxes(Reciprocal(z), -1), n, m)
	add := func(inBlock, across *Node) *Node {
		if across != nil {
			inBlock = Add(inBlock, across)
		}
		return Mul(Slice(Reshape(inBlock, n, nb*bs), AxisRange(), AxisRange(0, m)), rz)
	}
	if cross == nil {
		cross = &marginals{}
	}
	out := marginals{lz: lz}
	out.rowMass = add(sumLast(ew), cross.rowMass)
	out.colMass = add(sumRows(ew), cross.colMass)
	if delta != nil {
		d3 := Reshape(delta, n, nb, bs)
		dj := BroadcastToDims(Reshape(d3, n, nb, 1, bs), n, nb, bs, bs)
		di := BroadcastToDims(Reshape(d3, n, nb, bs, 1), n, nb, bs, bs)
		out.rowDelta = add(sumLast(Mul(ew, dj)), cross.rowDelta)
		out.colDelta = add(sumRows(Mul(ew, di)), cross.colDelta)
	}
	return out
}

// sumRows sums x [N, B, b, b] over axis 2: [N, B, b]. On the go backend as a batched product
// with a row of ones (its reductions walk an index iterator per value; see layers.SumLastAxis).
func sumRows(x *Node) *Node {
	if !layers.GoBackend(x.Graph()) {
		return ReduceSum(x, 2)
	}
	d := x.Shape().Dimensions
	nb := d[0] * d[1]
	ones := Ones(x.Graph(), shapes.Make(x.DType(), nb, 1, d[2]))
	y := DotGeneral(ones, []int{2}, []int{0}, Reshape(x, nb, d[2], d[3]), []int{1}, []int{0}) // [N*B, 1, b]
	return Reshape(y, d[0], d[1], d[3])
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
	// Teacher-led: I = top-M of t in teacher order; a = t[I], b = s[I].
	// Student-led: J = top-M of s (no gradient in the selection); c = s[J], e = t[J].
	// (Selected before StopGradient, so that other terms on the same logits share the selection.)
	iT := TopMIndices(t, m)
	jS := TopMIndices(s, m)
	t = StopGradient(t)
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
	kN := func(top *Node) *Node { // k capped at the finite head (as for DBiLD)
		finite := ConvertDType(GreaterThan(top, Infinity(g, top.DType(), -1)), dtypes.Int32)
		return MinScalar(ReduceSum(finite, 1), int32(k))
	}
	_ = n
	iT := TopMIndices(t, k)
	jS := TopMIndices(s, k)
	t = StopGradient(t)
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
