package distill

import (
	"math"
	"math/rand"
	"sort"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
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

// countType counts the graph's nodes of one type.
func countType(g *Graph, typ NodeType) int {
	c := 0
	for _, nd := range g.Nodes() {
		if nd.Type() == typ {
			c++
		}
	}
	return c
}

// One graph selects once per logits node: a narrower request on the same node is the prefix of
// the wider selection (checked against the host reference), and the teacher's selection is
// shared by DBiLD's align and visual-switch terms.
func TestTopMIndicesShared(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	const n, v = 3, 200
	data := make([]float32, n*v)
	for i := range data {
		data[i] = float32(rng.Intn(40)) // ties
	}
	b := engine.MustBackend("")
	var argMax int
	e := MustNewExec(b, func(x *Node) []*Node {
		wide := TopMIndices(x, 20)
		narrow := TopMIndices(x, 6)
		again := TopMIndices(x, 20)
		if again != wide {
			t.Errorf("a second top-20 of the same node built a new selection")
		}
		argMax = countType(x.Graph(), NodeTypeArgMinMax)
		return []*Node{wide, narrow}
	})
	out := e.MustExec(tensors.FromFlatDataAndDimensions(data, n, v))
	if argMax != 20 {
		t.Errorf("top-20 and top-6 of one node: %d ArgMax rounds, want 20", argMax)
	}
	for i, m := range []int{20, 6} {
		got := tensors.MustCopyFlatData[int32](out[i])
		for r := range n {
			want := hostTopM(data[r*v:(r+1)*v], m)
			for j := range m {
				if got[r*m+j] != want[j] {
					t.Fatalf("top-%d row %d rank %d: got %d, want %d", m, r, j, got[r*m+j], want[j])
				}
			}
		}
	}

	// Two DBiLD terms with one teacher select once fewer than with two teachers (the knees use
	// ArgMax too, so the graphs are compared).
	build := func(sameTeacher bool) int {
		g := NewGraph(b, "shared")
		mk := func(name string) *Node { return Parameter(g, name, shapes.Make(dtypes.Float32, 4, 100)) }
		t1, s1, w1 := mk("t"), mk("s"), mk("w")
		t2 := t1
		if !sameTeacher {
			t2 = mk("t2")
		}
		opts := DefaultDBiLDOptions()
		opts.Window = 10
		_ = Add(DBiLD(t1, s1, nil, opts), DBiLD(t2, w1, nil, opts))
		return countType(g, NodeTypeArgMinMax)
	}
	if shared, apart := build(true), build(false); shared != apart-10 {
		t.Errorf("DBiLD(t, s) + DBiLD(t, w), window 10: %d ArgMax nodes, with two teachers %d; want 10 fewer", shared, apart)
	}
}
