package tinyllava

import (
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// Logits runs the model over a batch and returns the logits [B, L, V] as a flat slice.
func (m *Model) Logits(b *Batch) ([]float32, error) {
	c := m.Config
	args, variant, front, err := m.inferenceFront(b)
	if err != nil {
		return nil, err
	}
	e, err := m.exec("logits/"+variant, func() (*Exec, error) {
		return NewExec(m.Backend, func(in []*Node) *Node {
			w, h, _ := front(in)
			return c.Logits(w, h)
		})
	})
	if err != nil {
		return nil, err
	}
	out, err := e.Exec(args...)
	if err != nil {
		return nil, fmt.Errorf("running the model: %w", err)
	}
	return tensors.CopyFlatData[float32](out[0])
}

// SupervisedRows returns each row's supervised positions (flat b*L+t), in order.
func (b *Batch) SupervisedRows() [][]int32 {
	rows := make([][]int32, b.B)
	for i, t := range b.Targets {
		if t >= 0 {
			rows[i/b.L] = append(rows[i/b.L], int32(i))
		}
	}
	return rows
}

// Supervised lists a batch's supervised positions (flat b*L+t) and their targets, padded to a
// multiple of bucket with position 0 / target 0 / weight 0 so graphs compile for few shapes.
func (b *Batch) Supervised(bucket int) (pos, targets []int32, weights []float32) {
	for i, t := range b.Targets {
		if t >= 0 {
			pos = append(pos, int32(i))
			targets = append(targets, t)
			weights = append(weights, 1)
		}
	}
	n := len(pos)
	if bucket > 1 {
		n = (n + bucket - 1) / bucket * bucket
	}
	if n == 0 {
		n = 1
	}
	for len(pos) < n {
		pos, targets, weights = append(pos, 0), append(targets, 0), append(weights, 0)
	}
	return
}

// SampleNLL is one sample's mean cross-entropy over its supervised tokens.
type SampleNLL struct {
	NLL    float64
	Tokens int
}

// NLL returns, per row of the batch, the mean cross-entropy over its supervised positions
// (accumulated in float64). Logits are computed only at the supervised positions.
func (m *Model) NLL(b *Batch) ([]SampleNLL, error) {
	c := m.Config
	pos, targets, weights := b.Supervised(32)
	args, variant, front, err := m.inferenceFront(b)
	if err != nil {
		return nil, err
	}
	e, err := m.exec("nll/"+variant, func() (*Exec, error) {
		return NewExec(m.Backend, func(in []*Node) *Node {
			w, h, rest := front(in)
			d := h.Shape().Dimensions
			h = Gather(Reshape(h, d[0]*d[1], d[2]), InsertAxes(rest[0], -1))
			return CrossEntropy(c.Logits(w, h), rest[1])
		})
	})
	if err != nil {
		return nil, err
	}
	args = append(args, tensors.FromFlatDataAndDimensions(pos, len(pos)), tensors.FromFlatDataAndDimensions(targets, len(targets)))
	out, err := e.Exec(args...)
	if err != nil {
		return nil, fmt.Errorf("running the model: %w", err)
	}
	ce, err := tensors.CopyFlatData[float32](out[0])
	if err != nil {
		return nil, err
	}
	res := make([]SampleNLL, b.B)
	sums := make([]float64, b.B)
	for i, p := range pos {
		if weights[i] == 0 {
			continue // bucket padding
		}
		r := int(p) / b.L
		sums[r] += float64(ce[i])
		res[r].Tokens++
	}
	for r := range res {
		if res[r].Tokens > 0 {
			res[r].NLL = sums[r] / float64(res[r].Tokens)
		} else {
			res[r].NLL = math.NaN()
		}
	}
	return res, nil
}
