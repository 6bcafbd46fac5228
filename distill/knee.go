package distill

import (
	"fmt"
	"math"
	"sort"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // graph DSL
)

// Knee is the host-side (float64) knee of the spec's DBiLD step 1, for tests and debugging.
//
// u is the leader's full vector. M = min(window, len(u)); the M largest entries are taken in a
// stable descending order u_1 >= ... >= u_M (lower index first among equal values). kMax <= 0
// means M; kMax and kMin are capped at M. If u_1 == u_M the knee is kMax. Otherwise
// x_i = (i-1)/(M-1), y_i = (u_i - u_M)/(u_1 - u_M), d_i = (1 - x_i) - y_i; if max d_i <= 0 the
// knee is kMax, else clamp(argmax_i d_i, kMin, kMax) with 1-based i and the first maximum on ties.
//
// Non-finite values (this package's convention; the spec is silent): -inf entries of the window
// are not candidates. The knee is taken over the M' finite entries at the head of the window
// (x_i = (i-1)/(M'-1)), and kMin, kMax are capped at M'. With M' < 2 the knee is M' (no pairs).
func Knee(u []float64, window, kMin, kMax int) int {
	m := min(window, len(u))
	if m < 1 {
		return 0
	}
	idx := make([]int, len(u))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return u[idx[a]] > u[idx[b]] })
	top := make([]float64, m)
	for i := range top {
		top[i] = u[idx[i]]
	}
	return kneeSorted(top, kMin, kMax)
}

// kneeSorted is Knee on an already sorted (descending) window.
func kneeSorted(top []float64, kMin, kMax int) int {
	m := len(top)
	if kMax <= 0 || kMax > m {
		kMax = m
	}
	// Finite head of the window.
	mf := 0
	for mf < m && !math.IsInf(top[mf], -1) {
		mf++
	}
	kMax = min(kMax, mf)
	kMin = min(kMin, kMax)
	if mf < 2 {
		return mf
	}
	u1, uM := top[0], top[mf-1]
	if u1 == uM {
		return kMax
	}
	best, bestD := 0, 0.0
	for i := 0; i < mf; i++ {
		x := float64(i) / float64(mf-1)
		y := (top[i] - uM) / (u1 - uM)
		d := (1 - x) - y
		if i == 0 || d > bestD {
			best, bestD = i+1, d
		}
	}
	if bestD <= 0 {
		return kMax
	}
	return max(kMin, min(kMax, best))
}

// KneeK computes the knee per row in the graph, from the window values top [N, M] sorted in
// descending order (float32 or float64; the arithmetic is done in float64 with the same formula
// and operation order as Knee, so the two agree exactly on the same inputs). It returns k [N]
// int32. No gradient flows through it.
func KneeK(top *Node, kMin, kMax int) *Node {
	if top.Rank() != 2 {
		panic(fmt.Sprintf("distill.KneeK: top must be [N, M], got %s", top.Shape()))
	}
	g := top.Graph()
	n, m := top.Shape().Dimensions[0], top.Shape().Dimensions[1]
	if kMax <= 0 || kMax > m {
		kMax = m
	}
	u := ConvertDType(StopGradient(top), dtypes.Float64)
	finite := GreaterThan(u, Infinity(g, dtypes.Float64, -1))
	mf := ReduceSum(ConvertDType(finite, dtypes.Int32), 1) // [N], finite head length (sorted: -inf at the end)
	kMaxN := MinScalar(mf, int32(kMax))
	kMinN := Min(Scalar(g, dtypes.Int32, kMin), kMaxN)
	if m < 2 {
		return mf
	}
	iota := Iota(g, shapes.Make(dtypes.Int32, n, m), 1)
	last := MaxScalar(AddScalar(mf, int32(-1)), int32(0)) // index of u_M'
	uM := Gather(u, Stack([]*Node{Iota(g, shapes.Make(dtypes.Int32, n), 0), last}, -1))
	u1 := Slice(u, AxisRange(), AxisRange(0, 1))
	u1 = Reshape(u1, n)
	// x_i = i/(M'-1) (0-based i), computed as float64 division like the host code.
	den := ConvertDType(MaxScalar(last, int32(1)), dtypes.Float64)
	x := Div(ConvertDType(iota, dtypes.Float64), InsertAxes(den, -1))
	rng := Sub(u1, uM)
	safeRng := Where(Equal(rng, ScalarZero(g, dtypes.Float64)), OnesLike(rng), rng)
	y := Div(Sub(u, InsertAxes(uM, -1)), InsertAxes(safeRng, -1))
	d := Sub(OneMinus(x), y)
	inHead := LessThan(iota, InsertAxes(mf, -1))
	d = Where(inHead, d, Infinity(g, dtypes.Float64, -1))
	arg := ArgMax(d, 1, dtypes.Int32) // first maximum
	maxD := ReduceMax(d, 1)
	k := Max(kMinN, Min(kMaxN, AddScalar(arg, int32(1))))
	flat := LogicalOr(Equal(u1, uM), LessOrEqual(maxD, ScalarZero(g, dtypes.Float64)))
	k = Where(flat, kMaxN, k)
	return Where(LessThan(mf, Scalar(g, dtypes.Int32, 2)), mf, k)
}
