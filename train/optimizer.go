// Package train runs Switch-KD and its baselines: the training step graph (teacher, student
// and visual-switch forward passes, the objective, gradients), AdamW with a cosine schedule,
// gradient accumulation and clipping, checkpoints that resume exactly, and metrics.
package train

import (
	"math"
	"strings"

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

// Update builds the AdamW update for all trainable parameters at once: it clips the
// gradients by their global norm, then returns the new parameters, first and second moments,
// and the global norm before clipping. lr and step (1-based, float) are scalar nodes.
func (o AdamW) Update(names []string, params, grads, m, v []*Node, lr, step *Node) (newP, newM, newV []*Node, norm *Node) {
	g := lr.Graph()
	sq := make([]*Node, len(grads))
	for i, gr := range grads {
		sq[i] = ReduceAllSum(ConvertDType(Square(gr), lr.DType()))
	}
	norm = Sqrt(ReduceAllSum(Stack(sq, 0)))
	scale := ScalarOne(g, lr.DType())
	if o.MaxGradNorm > 0 {
		// clip_coef = max_norm / (total_norm + 1e-6), clamped to 1.
		scale = Min(scale, Div(Scalar(g, lr.DType(), o.MaxGradNorm), AddScalar(norm, 1e-6)))
	}
	bc1 := OneMinus(Pow(Scalar(g, lr.DType(), o.Beta1), step))
	bc2 := OneMinus(Pow(Scalar(g, lr.DType(), o.Beta2), step))
	for i := range params {
		dt := params[i].DType()
		gr := Mul(grads[i], ConvertDType(scale, dt))
		mi := Add(MulScalar(m[i], o.Beta1), MulScalar(gr, 1-o.Beta1))
		vi := Add(MulScalar(v[i], o.Beta2), MulScalar(Square(gr), 1-o.Beta2))
		p := params[i]
		lrT := ConvertDType(lr, dt)
		if o.WeightDecay > 0 && Decays(names[i], p.Rank()) {
			p = Mul(p, OneMinus(MulScalar(lrT, o.WeightDecay)))
		}
		// p -= lr * (m / bc1) / (sqrt(v / bc2) + eps)
		mhat := Div(mi, ConvertDType(bc1, dt))
		denom := AddScalar(Sqrt(Div(vi, ConvertDType(bc2, dt))), o.Eps)
		p = Sub(p, Mul(lrT, Div(mhat, denom)))
		newP, newM, newV = append(newP, p), append(newM, mi), append(newV, vi)
	}
	return newP, newM, newV, norm
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
