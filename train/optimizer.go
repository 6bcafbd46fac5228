// Package train runs Switch-KD and its baselines: the training step graph (teacher, student
// and visual-switch forward passes, the objective, gradients), AdamW with a cosine schedule,
// gradient accumulation and clipping, checkpoints that resume exactly, and metrics.
package train

import (
	"math"
	"strings"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
)

// AdamW holds the optimizer's hyper-parameters (PyTorch's torch.optim.AdamW semantics:
// decoupled weight decay p -= lr*wd*p, bias-corrected moments, eps outside the square root).
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	// MaxGradNorm clips the global gradient norm (torch.nn.utils.clip_grad_norm_); 0 = off.
	MaxGradNorm float64
}

// DefaultAdamW are the TinyLLaVA / Hugging Face Trainer defaults.
func DefaultAdamW() AdamW {
	return AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0, MaxGradNorm: 1}
}

// Decays reports whether a parameter gets weight decay: not norms and not biases (nor any
// 1-D tensor), as the Hugging Face Trainer groups them.
func Decays(name string, rank int) bool {
	return rank > 1 && !strings.HasSuffix(name, ".bias") && !strings.Contains(name, "norm")
}

// Update builds the AdamW update for all trainable parameters in one graph: it clips the
// gradients by their global norm, then returns the new parameters, first and second moments,
// and the global norm before clipping (float64). lr and step (1-based) are float32 scalars.
// (The trainer splits the same computation into concurrent groups: SumSquares, ClipScale and
// Apply.)
func (o AdamW) Update(names []string, params, grads, m, v []*Node, lr, step *Node) (newP, newM, newV []*Node, norm *Node) {
	g := lr.Graph()
	norm = Sqrt(SumSquares(grads))
	scale := ScalarOne(g, dtypes.Float64)
	if o.MaxGradNorm > 0 {
		// clip_coef = max_norm / (total_norm + 1e-6), clamped to 1.
		scale = Min(scale, Div(Scalar(g, dtypes.Float64, o.MaxGradNorm), AddScalar(norm, 1e-6)))
	}
	newP, newM, newV = o.Apply(names, params, grads, m, v, lr, step, ConvertDType(scale, lr.DType()))
	return newP, newM, newV, norm
}

// SumSquares is the sum of the squares of every gradient (the squared global norm), a float64
// scalar. Squares are summed in float32 along each tensor's last axis only (a row: at most a
// few thousand values) and the row sums in float64: a float32 sum over a whole 136M-value
// embedding gradient, added one by one, would stall once the total dwarfs each square.
func SumSquares(grads []*Node) *Node {
	sums := make([]*Node, len(grads))
	for i, gr := range grads {
		rows := Square(gr)
		if gr.Rank() > 1 {
			rows = ReduceSum(rows, -1)
		}
		sums[i] = ReduceAllSum(ConvertDType(rows, dtypes.Float64))
	}
	return ReduceAllSum(Stack(sums, 0))
}

// ClipScale is the factor torch.nn.utils.clip_grad_norm_ multiplies the gradients by, given
// their global norm: min(1, max_norm / (norm + 1e-6)), or 1 when clipping is off.
func (o AdamW) ClipScale(norm float64) float64 {
	if o.MaxGradNorm <= 0 {
		return 1
	}
	return math.Min(1, o.MaxGradNorm/(norm+1e-6))
}

// Apply builds the AdamW update of params given the gradients' clip factor scale (float32
// scalar, from ClipScale): torch's
//
//	p *= 1 - lr*wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//	p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)
//
// with g = scale * grad, computed as p -= (lr sqrt(bc2)/bc1) * m / (sqrt(v) + eps sqrt(bc2)),
// the scalars folded so each parameter takes 12 element-wise passes (13 with weight decay).
func (o AdamW) Apply(names []string, params, grads, m, v []*Node, lr, step, scale *Node) (newP, newM, newV []*Node) {
	g := lr.Graph()
	dt := lr.DType()
	bc1 := OneMinus(Pow(Scalar(g, dt, o.Beta1), step))
	bc2 := OneMinus(Pow(Scalar(g, dt, o.Beta2), step))
	sqrtBC2 := Sqrt(bc2)
	gScale := MulScalar(scale, 1-o.Beta1)              // on g, into m
	g2Scale := MulScalar(Mul(scale, scale), 1-o.Beta2) // on g^2, into v
	stepSize := Div(Mul(lr, sqrtBC2), bc1)             // on m / denom
	epsHat := MulScalar(sqrtBC2, o.Eps)                // added to sqrt(v)
	decay := OneMinus(MulScalar(lr, o.WeightDecay))    // on decayed params
	for i := range params {
		p, gr := params[i], grads[i]
		cast := func(x *Node) *Node { return ConvertDType(x, p.DType()) }
		mi := Add(MulScalar(m[i], o.Beta1), Mul(gr, cast(gScale)))
		vi := Add(MulScalar(v[i], o.Beta2), Mul(Square(gr), cast(g2Scale)))
		if o.WeightDecay > 0 && Decays(names[i], p.Rank()) {
			p = Mul(p, cast(decay))
		}
		upd := Div(mi, Add(Sqrt(vi), cast(epsHat)))
		p = Sub(p, Mul(upd, cast(stepSize)))
		newP, newM, newV = append(newP, p), append(newM, mi), append(newV, vi)
	}
	return newP, newM, newV
}

// Schedule is a linear warmup followed by cosine decay to zero (transformers'
// get_cosine_schedule_with_warmup), over Total steps.
type Schedule struct {
	PeakLR      float64
	Total       int
	WarmupRatio float64
}

// WarmupSteps is ceil(Total * WarmupRatio), as the Hugging Face Trainer computes it.
func (s Schedule) WarmupSteps() int { return int(math.Ceil(float64(s.Total) * s.WarmupRatio)) }

// LR is the learning rate used for the update of step (0-based).
func (s Schedule) LR(step int) float64 {
	w := s.WarmupSteps()
	if step < w {
		return s.PeakLR * float64(step) / float64(max(1, w))
	}
	progress := float64(step-w) / float64(max(1, s.Total-w))
	return s.PeakLR * math.Max(0, 0.5*(1+math.Cos(math.Pi*progress)))
}
