package tinyllava

import (
	"math/rand/v2"
	"os"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/engine"
)

// The go backend's parallel op executor was seen to deadlock ("all goroutines are asleep") on
// transformer forward+backward loops with its default bounded worker pool; engine.Backend
// starts it unbounded (see also cmd/switchkd's TestParallelExecutorRepeated). This runs a full
// TinyLLaVA forward+backward many times on the default backend. Set
// SWITCHKD_STRESS_BACKEND (e.g. go:ops_sequential) to try another setting.
func TestForwardBackwardRepeated(t *testing.T) {
	backend := os.Getenv("SWITCHKD_STRESS_BACKEND")
	reps := 40
	if testing.Short() {
		reps = 5
	}
	c := tinyConfig(t)
	m, err := New(c, RandomParams(c, 0.2, 1), engine.MustBackend(backend))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	b, err := c.BuildBatch([]Input{
		{ID: "a", IDs: []int{5, ImageTokenIndex, 7, 8, 9, 10}, Labels: []int{-100, -100, -100, 8, 9, 10}, Images: [][]float32{randomImage(c, rng)}},
		{ID: "b", IDs: []int{ImageTokenIndex, 12, 13, 14}, Labels: []int{-100, 12, 13, 14}, Images: [][]float32{randomImage(c, rng)}},
	}, 8)
	if err != nil {
		t.Fatal(err)
	}
	pos, targets, _ := b.Supervised(8)
	np := len(m.Params.Used)
	e, err := NewExec(m.Backend, func(in []*Node) []*Node {
		w := Weights(m.Params.Used, in[:np])
		bn, rest := BatchInputs(in[np:], true)
		h := c.Hidden(w, bn)
		d := h.Shape().Dimensions
		h = Gather(Reshape(h, d[0]*d[1], d[2]), InsertAxes(rest[0], -1))
		loss := ReduceAllSum(CrossEntropy(c.Logits(w, h), rest[1]))
		return Gradient(loss, in[:np]...)
	})
	if err != nil {
		t.Fatal(err)
	}
	args := append(m.ParamArgs(), b.Args(c)...)
	args = append(args, tensors.FromFlatDataAndDimensions(pos, len(pos)), tensors.FromFlatDataAndDimensions(targets, len(targets)))
	var first []float32
	for r := 0; r < reps; r++ {
		out, err := e.Exec(args...)
		if err != nil {
			t.Fatal(err)
		}
		g := tensors.MustCopyFlatData[float32](out[0])
		if first == nil {
			first = g
			continue
		}
		for i := range g { // runs are deterministic, bit for bit
			if g[i] != first[i] {
				t.Fatalf("repetition %d: gradient %d = %v, first run %v", r, i, g[i], first[i])
			}
		}
	}
}
