package distill

import (
	"math"
	"math/rand"
	"sort"
	"testing"
	"time"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/switchkd/switchkd/engine"
)

// hostTopM is the reference: a stable descending sort of the row (lower index first on ties).
func hostTopM(row []float32, m int) []int32 {
	idx := make([]int, len(row))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
	out := make([]int32, m)
	for i := range out {
		out[i] = int32(idx[i])
	}
	return out
}

func checkTopM(t *testing.T, name string, data []float32, n, v, m int) time.Duration {
	t.Helper()
	b := engine.MustBackend("")
	e := MustNewExec(b, func(x *Node) *Node { return TopMIndices(x, m) })
	x := tensors.FromFlatDataAndDimensions(data, n, v)
	t0 := time.Now()
	got := e.MustExec1(x)
	d := time.Since(t0)
	flat := tensors.MustCopyFlatData[int32](got)
	for r := 0; r < n; r++ {
		want := hostTopM(data[r*v:(r+1)*v], m)
		for i := range m {
			if flat[r*m+i] != want[i] {
				t.Fatalf("%s: row %d rank %d: got index %d, want %d", name, r, i, flat[r*m+i], want[i])
			}
		}
	}
	return d
}

func TestTopMIndices(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, tc := range []struct{ n, v, m int }{{3, 5, 5}, {4, 512, 64}, {2, 4096, 64}, {3, 5000, 64}, {2, 70001, 8}, {2, 151936, 64}} {
		for _, kind := range []string{"normal", "ties", "neginf", "flat", "huge", "extremes"} {
			data := make([]float32, tc.n*tc.v)
			for i := range data {
				switch kind {
				case "normal":
					data[i] = float32(rng.NormFloat64())
				case "ties":
					data[i] = float32(rng.Intn(7))
				case "neginf":
					data[i] = float32(rng.NormFloat64())
					if rng.Intn(3) == 0 {
						data[i] = float32(math.Inf(-1))
					}
				case "flat":
					data[i] = 2.5
				case "huge":
					data[i] = float32(rng.NormFloat64() * 1e30)
				case "extremes": // float32's ends, both infinities and both zeros, repeated
					ends := []float64{math.Inf(-1), -math.MaxFloat32, math.MaxFloat32, math.Inf(1), math.Copysign(0, -1), 0, 1}
					data[i] = float32(ends[rng.Intn(len(ends))])
				}
			}
			if kind == "neginf" {
				// One row almost all -inf: fewer finite entries than m.
				for i := 3; i < tc.v; i++ {
					data[i] = float32(math.Inf(-1))
				}
				data[tc.v-1] = float32(math.Copysign(0, -1))
			}
			checkTopM(t, kind, data, tc.n, tc.v, tc.m)
		}
	}
}
