package train

import (
	"fmt"
	"math"
	"runtime"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
)

// AdamW on host memory.
//
// On a backend whose buffers are host memory (the pure-Go backend) the optimizer does not need
// a graph: one fused pass per parameter reads the gradient and updates the parameter and both
// moments in place, split over every core. As graphs, the same update is 12 single-threaded
// element-wise passes, each writing a fresh buffer (a 136M-value embedding took ~4 s a step).
// The arithmetic is Apply's, operation for operation in float32, so both paths give the same
// bits (TestHostAdamWMatchesGraph).

// adamScalars are Apply's folded per-step scalars, in float32 as its graph computes them.
type adamScalars struct {
	gScale, g2Scale, stepSize, epsHat, decay, beta1, beta2 float32
}

func (o AdamW) scalars(lr, step, scale float32) adamScalars {
	pow := func(b float64) float32 { return float32(math.Pow(float64(float32(b)), float64(step))) }
	bc1 := 1 - pow(o.Beta1)
	bc2 := 1 - pow(o.Beta2)
	sqrtBC2 := float32(math.Sqrt(float64(bc2)))
	return adamScalars{
		gScale:   scale * float32(1-o.Beta1),
		g2Scale:  (scale * scale) * float32(1-o.Beta2),
		stepSize: (lr * sqrtBC2) / bc1,
		epsHat:   sqrtBC2 * float32(o.Eps),
		decay:    1 - lr*float32(o.WeightDecay),
		beta1:    float32(o.Beta1),
		beta2:    float32(o.Beta2),
	}
}

// applyHost is Apply for one parameter, in place over p, m and v given its gradient g. It runs
// the vector kernel of this build and CPU when there is one (hostadamw_simd.go): the same
// float32 operations lane by lane, so the same bits as applyScalar.
func applyHost(p, g, m, v []float32, decays bool, s adamScalars) {
	if len(g) != len(p) || len(m) != len(p) || len(v) != len(p) {
		panic(fmt.Sprintf("applyHost: lengths %d, %d, %d, %d differ", len(p), len(g), len(m), len(v)))
	}
	n := 0
	if applyVector != nil {
		n = applyVector(p, g, m, v, decays, s)
	}
	applyScalar(p[n:], g[n:], m[n:], v[n:], decays, s)
}

// applyVector, when set, updates a prefix of p, m and v as applyScalar would and returns its
// length.
var applyVector func(p, g, m, v []float32, decays bool, s adamScalars) int

// applyScalar is applyHost one value at a time.
func applyScalar(p, g, m, v []float32, decays bool, s adamScalars) {
	if len(p) == 0 {
		return
	}
	_ = g[len(p)-1]
	_, _ = m[len(p)-1], v[len(p)-1]
	for i := range p {
		gi := g[i]
		mi := m[i]*s.beta1 + gi*s.gScale
		vi := v[i]*s.beta2 + (gi*gi)*s.g2Scale
		pi := p[i]
		if decays {
			pi *= s.decay
		}
		upd := mi / (float32(math.Sqrt(float64(vi))) + s.epsHat)
		p[i] = pi - upd*s.stepSize
		m[i], v[i] = mi, vi
	}
}

// hostChunk is the number of values one goroutine updates at a time (4 MiB of float32).
const hostChunk = 1 << 20

// hostWork is one [lo, hi) range of one tensor's values.
type hostWork struct{ t, lo, hi int }

// splitHost cuts tensors of the given sizes into ranges of at most hostChunk values, each range
// a whole number of rows of length rowLen[t] (rowLen 1: any cut).
func splitHost(sizes, rowLen []int) []hostWork {
	var w []hostWork
	for t, n := range sizes {
		step := max(1, hostChunk/rowLen[t]) * rowLen[t]
		for lo := 0; lo < n; lo += step {
			w = append(w, hostWork{t, lo, min(n, lo+step)})
		}
	}
	return w
}

// runHost runs fn over the work items on every core.
func runHost(work []hostWork, fn func(w hostWork)) {
	_ = Parallel(len(work), runtime.GOMAXPROCS(0), func(k int) error { fn(work[k]); return nil })
}

// sumSquaresHost is SumSquares on host slices: each row (last axis; rowLen values) summed in
// float32, the rows in float64, the tensors in order. A rank-0/1 tensor (rowLen 1) sums its
// float32 squares in float64, as SumSquares's graph does.
func sumSquaresHost(grads [][]float32, rowLen []int) float64 {
	sizes := make([]int, len(grads))
	rows := make([][]float64, len(grads))
	for t, g := range grads {
		sizes[t] = len(g)
		rows[t] = make([]float64, len(g)/rowLen[t])
	}
	runHost(splitHost(sizes, rowLen), func(w hostWork) {
		g, r := grads[w.t], rowLen[w.t]
		for lo := w.lo; lo < w.hi; lo += r {
			var s float32
			for _, x := range g[lo : lo+r] {
				s += x * x
			}
			rows[w.t][lo/r] = float64(s)
		}
	})
	var total float64
	for _, rs := range rows {
		var s float64
		for _, x := range rs {
			s += x
		}
		total += s
	}
	return total
}

// hostAdamW is AdamW with the parameters and moments held as tensors whose memory the backend
// shares with the host, updated in place.
type hostAdamW struct {
	backend compute.Backend
	owned   map[*tensors.Tensor]bool // tensors this optimizer created, safe to update in place
}

// hostOptimizer reports whether the trainer updates parameters on the host.
func hostOptimizer(b compute.Backend, o Options) bool {
	return b.HasSharedBuffers() && !o.GraphOptimizer
}

// own returns x itself if this optimizer created it, else a shared copy it owns. Parameters
// the trainer is given may be shared with other models (or be host tensors restored from a
// checkpoint), so they are copied once before the first in-place update.
func (h *hostAdamW) own(x *tensors.Tensor) (*tensors.Tensor, error) {
	if h.owned[x] {
		return x, nil
	}
	y, err := tensors.FromShapeForBackend(h.backend, 0, x.Shape())
	if err != nil {
		return nil, err
	}
	if !y.IsShared() {
		return nil, fmt.Errorf("backend %s does not share buffers with the host", h.backend.Name())
	}
	src, err := flat(x)
	if err == nil {
		err = tensors.MutableFlatData(y, func(dst []float32) { copy(dst, src) })
	}
	if err != nil {
		return nil, err
	}
	h.owned[y] = true
	return y, nil
}

// flat returns a float32 tensor's values without copying: for a shared tensor, or any tensor on
// a backend whose buffers are host memory, the slice is the backend's buffer itself. Writing
// through it is safe only while no execution reads the tensor, and only for tensors the
// optimizer owns.
func flat(x *tensors.Tensor) ([]float32, error) {
	var out []float32
	err := tensors.ConstFlatData(x, func(f []float32) { out = f })
	return out, err
}
