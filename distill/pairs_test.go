package distill

import (
	"cmp"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// hostPairKL is the definition of pairKL written out pair by pair in float64 (the O(M^2) form):
// the divergence between the pair-difference distributions of tv and sv over i < j < k, and its
// gradient in sv. Values below -2^122 are clamped as pairKL does (and get no gradient).
func hostPairKL(tv, sv []float64, k int, tau float64, reverse bool) (y float64, w []float64) {
	m := len(tv)
	w = make([]float64, m)
	if k < 2 {
		return 0, w
	}
	cl := func(v float64) float64 { return math.Max(v, negClamp) }
	type pair struct{ i, j int }
	var ps []pair
	for j := 0; j < k; j++ {
		for i := 0; i < j; i++ {
			ps = append(ps, pair{i, j})
		}
	}
	A, B := make([]float64, len(ps)), make([]float64, len(ps))
	for p, q := range ps {
		A[p] = (cl(tv[q.i]) - cl(tv[q.j])) / tau
		B[p] = (cl(sv[q.i]) - cl(sv[q.j])) / tau
	}
	soft := func(x []float64) (lz float64, p []float64) {
		mx := math.Inf(-1)
		for _, v := range x {
			mx = math.Max(mx, v)
		}
		s := 0.0
		p = make([]float64, len(x))
		for i, v := range x {
			p[i] = math.Exp(v - mx)
			s += p[i]
		}
		for i := range p {
			p[i] /= s
		}
		return mx + math.Log(s), p
	}
	lzA, P := soft(A)
	lzB, Q := soft(B)
	dB := make([]float64, len(ps))
	if reverse {
		kq := 0.0
		for p := range ps {
			kq += Q[p] * (B[p] - A[p])
		}
		y = kq - lzB + lzA
		for p := range ps {
			dB[p] = Q[p] * (B[p] - A[p] - kq)
		}
	} else {
		for p := range ps {
			y += P[p] * (A[p] - B[p])
		}
		y += lzB - lzA
		for p := range ps {
			dB[p] = Q[p] - P[p]
		}
	}
	for p, q := range ps {
		w[q.i] += dB[p] / tau
		w[q.j] -= dB[p] / tau
	}
	for i, v := range sv {
		if v < negClamp { // the clamp passes no gradient
			w[i] = 0
		}
	}
	return y, w
}

// TestPairKLMatchesDefinition checks pairKL's blocked computation (pairs inside blocks of
// pairBlock, block sums across them) against the pair-by-pair definition: values and gradients,
// both directions, k across and at block boundaries, a window that is not a whole number of
// blocks, and rows whose spread is far beyond exp's range (ramps of 600 tau per step up and down,
// 1e30-scale logits, clamped -inf), where a single shift for the whole row would underflow.
func TestPairKLMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	type row struct {
		name   string
		tv, sv []float64
		k      int
	}
	sortDesc := func(x []float64) []float64 {
		slices.SortFunc(x, func(a, b float64) int { return cmp.Compare(b, a) })
		return x
	}
	normal := func(m int, scale float64) []float64 {
		x := make([]float64, m)
		for i := range x {
			x[i] = rng.NormFloat64() * scale
		}
		return x
	}
	for _, m := range []int{2, 5, 8, 20, 64} {
		var rows []row
		for _, k := range []int{0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 20, 33, 63, 64} {
			if k > m {
				continue
			}
			rows = append(rows, row{fmt.Sprintf("normal k=%d", k), sortDesc(normal(m, 3)), normal(m, 3), k})
		}
		ramp := func(step float64) []float64 {
			x := make([]float64, m)
			for i := range x {
				x[i] = step * float64(i)
			}
			return x
		}
		rows = append(rows,
			row{"ramp up", sortDesc(normal(m, 3)), ramp(1800), m},
			row{"ramp down", ramp(-1800), ramp(-1800), m},
			row{"ramp down, student up", ramp(-1800), ramp(1800), m},
			row{"1e30 scale", sortDesc(normal(m, 1e30)), normal(m, 1e30), m})
		clamped := normal(m, 3)
		for i := m / 2; i < m; i++ {
			clamped[i] = math.Inf(-1)
		}
		rows = append(rows, row{"-inf tail", sortDesc(normal(m, 3)), clamped, m})
		n := len(rows)
		tvF, svF, kF := make([]float64, 0, n*m), make([]float64, 0, n*m), make([]int32, n)
		for r, x := range rows {
			tvF, svF, kF[r] = append(tvF, x.tv...), append(svF, x.sv...), int32(x.k)
		}
		for _, reverse := range []bool{true, false} {
			e := MustNewExec(backend(), func(tv, sv, k *Node) []*Node {
				y := pairKL(tv, sv, k, 3, reverse)
				return []*Node{y, Gradient(ReduceAllSum(y), sv)[0]}
			})
			out := e.MustExec(tensors.FromFlatDataAndDimensions(tvF, n, m), tensors.FromFlatDataAndDimensions(svF, n, m),
				tensors.FromFlatDataAndDimensions(kF, n))
			y, grad := tensors.MustCopyFlatData[float64](out[0]), tensors.MustCopyFlatData[float64](out[1])
			for r, x := range rows {
				wantY, wantW := hostPairKL(x.tv, x.sv, x.k, 3, reverse)
				// Float64 rounding at the logits' own scale bounds what either side can resolve
				// (at 1e30 or 2^122 it swamps the divergence itself).
				ulps := 0.0
				for i := range x.k {
					ulps = math.Max(ulps, math.Max(math.Abs(math.Max(x.tv[i], negClamp)), math.Abs(math.Max(x.sv[i], negClamp)))/3)
				}
				ulps *= 1e-13
				name := fmt.Sprintf("M=%d %s reverse=%v", m, x.name, reverse)
				if d := math.Abs(y[r] - wantY); !(d <= 1e-9*math.Max(1, math.Abs(wantY))+ulps) {
					t.Errorf("%s: divergence %.12g, want %.12g", name, y[r], wantY)
				}
				scale := 0.0
				for _, v := range wantW {
					scale = math.Max(scale, math.Abs(v))
				}
				for i, v := range wantW {
					if d := math.Abs(grad[r*m+i] - v); !(d <= 1e-9*scale+ulps) {
						t.Errorf("%s: gradient[%d] %.12g, want %.12g (max |w| %.3g)", name, i, grad[r*m+i], v, scale)
						break
					}
				}
			}
		}
	}
}
