package distill

import (
	"math"
	"math/rand"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

func TestKneeCrafted(t *testing.T) {
	ninf := math.Inf(-1)
	for _, c := range []struct {
		name             string
		u                []float64
		window, kMin, kM int
		want             int
	}{
		// d = [0, .25, .25, .125, 0]: first of the tied maxima (i=2), clamped up to k_min 3.
		{"spec teacher", []float64{1, 4, 0, 2, 0.5}, 5, 3, 0, 3},
		{"spec student", []float64{3, 2, -0.5, 0, 1}, 5, 3, 0, 4},
		// Same teacher with k_min 1: the first maximum, 2, not 3.
		{"first max on ties", []float64{1, 4, 0, 2, 0.5}, 5, 1, 0, 2},
		// Steep head: one dominant value; d_2 = 1 - 1/7 = .857 is the maximum -> 2, clamped to k_min 4.
		{"steep", []float64{100, 1, 1, 1, 1, 1, 1, 1}, 64, 4, 0, 4},
		{"steep kmin 1", []float64{100, 1, 1, 1, 1, 1, 1, 1}, 64, 1, 0, 2},
		// Flat head: u_1 == u_M -> k_max (M = window = 8, although the vector is not flat beyond it).
		{"flat window", []float64{5, 5, 5, 5, 5, 5, 5, 5, 5, -3, -4}, 8, 4, 0, 8},
		{"flat k_max", []float64{2, 2, 2, 2, 2, 2}, 64, 4, 5, 5},
		// Linear: d = 0 everywhere -> max d <= 0 -> k_max.
		{"linear", []float64{4, 3, 2, 1, 0}, 64, 2, 0, 5},
		// Concave head (-i^2): y = [1, .9375, .75, .4375, 0], d = [0, -.1875, -.25, -.1875, 0] -> k_max.
		{"concave", []float64{0, -1, -4, -9, -16}, 64, 2, 0, 5},
		// Convex (i^2 from the bottom): y = [1, .5625, .25, .0625, 0], d = [0, .1875, .25, .1875, 0] -> 3.
		{"convex", []float64{16, 9, 4, 1, 0}, 64, 1, 0, 3},
		{"convex kmax 2", []float64{16, 9, 4, 1, 0}, 64, 1, 2, 2},
		// Unsorted input with ties: the window is the stable descending order of u.
		{"ties unsorted", []float64{0, 16, 4, 9, 1, 4}, 5, 1, 0, 3},
		// -inf entries are not candidates: finite head [3, 1] -> M' = 2, k capped at 2.
		{"neg inf", []float64{ninf, 3, ninf, 1}, 64, 4, 0, 2},
		{"one finite", []float64{ninf, 3, ninf}, 64, 4, 0, 1},
		// Rounding is part of the contract: exactly, d = [0, -1/3, 0, 0] (k_max = 4), but in float64
		// (1 - 2/3) - 1/3 = 5.6e-17 > 0, so the knee is 3 (the reference computes the same).
		{"float64 rounding", []float64{3, 3, 1, 0}, 64, 2, 0, 3},
	} {
		if got := Knee(c.u, c.window, c.kMin, c.kM); got != c.want {
			t.Errorf("%s: Knee(%v, %d, %d, %d) = %d, want %d", c.name, c.u, c.window, c.kMin, c.kM, got, c.want)
		}
	}
}

// KneeK (graph, float64) must agree exactly with Knee (host) on sorted windows, including ties and
// rows with -inf.
func TestKneeGraphMatchesHost(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	const n, m = 300, 16
	rows := make([][]float64, n)
	flat := make([]float32, 0, n*m)
	for r := range rows {
		u := make([]float64, m)
		for i := range u {
			switch r % 5 {
			case 0:
				u[i] = float64(float32(rng.NormFloat64() * 3))
			case 1:
				u[i] = float64(rng.Intn(4))
			case 2:
				u[i] = float64(float32(math.Exp(rng.NormFloat64() * 3)))
			case 3:
				u[i] = 1.5
			case 4:
				u[i] = float64(float32(rng.NormFloat64()))
				if i > 3+r%11 {
					u[i] = math.Inf(-1)
				}
			}
		}
		// Sort descending (stable) as TopMIndices would.
		idx := hostTopM(toF32(u), m)
		s := make([]float64, m)
		for i, j := range idx {
			s[i] = u[j]
			flat = append(flat, float32(u[j]))
		}
		rows[r] = s
	}
	for _, km := range [][2]int{{1, 0}, {4, 0}, {3, 9}} {
		e := MustNewExec(backend(), func(x *Node) *Node { return KneeK(x, km[0], km[1]) })
		got := tensors.MustCopyFlatData[int32](e.MustExec1(tensors.FromFlatDataAndDimensions(flat, n, m)))
		for r := range rows {
			if want := kneeSorted(rows[r], km[0], km[1]); int(got[r]) != want {
				t.Fatalf("k_min %d k_max %d: row %d %v: graph knee %d, host %d", km[0], km[1], r, rows[r], got[r], want)
			}
		}
	}
}

func toF32(u []float64) []float32 {
	out := make([]float32, len(u))
	for i, v := range u {
		out[i] = float32(v)
	}
	return out
}
