// Package hostops holds element-wise kernels that run on the host between graph executions, on
// buffers the backend shares with the host (the pure-Go backend's). The go backend computes
// exp, tanh and the sigmoid through float64 math.Exp / math.Tanh one element at a time and on
// one core; inference splits its graph around them and runs these instead: vector kernels
// (AVX-512 in GOEXPERIMENT=simd builds, hostops_simd.go) on every core.
//
// Every kernel works in place on float32 slices. exp is Cody-Waite range reduction and Cephes'
// degree-6 polynomial (within 2 ulp of exp over float32's range); the scalar loop used for row
// tails, and for everything when there is no vector kernel, computes the same formulas.
package hostops

import (
	"math"
	"runtime"
	"sync"
)

// Vector reports whether this build and CPU have the vector kernels. Without them the host
// kernels are no faster than the backend's own, and callers keep the single-graph path.
func Vector() bool { return vector }

// The kernels, each over a whole slice: the scalar loops, replaced (and vector set) by
// hostops_simd.go where the CPU has AVX-512.
var (
	vector      bool
	softmaxRow  = softmaxScalar
	geluSlice   = geluScalar
	siluMulPair = siluMulScalar
)

const (
	log2e  = 1.44269504088896341
	ln2Hi  = 0.693359375
	ln2Lo  = -2.12194440e-4
	expMax = 88.76  // above log(MaxFloat32): +Inf
	expMin = -104.0 // exp(-104) < 2^-150: rounds to 0 in float32
	c1     = 1.9875691500e-4
	c2     = 1.3981999507e-3
	c3     = 8.3334519073e-3
	c4     = 4.1665795894e-2
	c5     = 1.6666665459e-1
	c6     = 5.0000001201e-1
	// sqrt(2/pi) and 0.044715 of the tanh approximation of GELU.
	geluC = 0.7978845608028654
	geluA = 0.044715
)

// exp32 is the kernels' exp for one value (the vector kernels compute the same formula per lane).
func exp32(x float32) float32 {
	if x != x {
		return x
	}
	x = min(max(x, expMin), expMax)
	n := float32(math.RoundToEven(float64(x * log2e)))
	r := x - n*ln2Hi - n*ln2Lo
	p := ((((c1*r+c2)*r+c3)*r+c4)*r+c5)*r + c6
	p = p*r*r + r + 1
	return float32(math.Ldexp(float64(p), int(n)))
}

// softmaxScalar is softmax over one row: max, exp(x - max) and its sum, scale by 1/sum.
func softmaxScalar(row []float32) {
	mx := float32(math.Inf(-1))
	for _, v := range row {
		mx = max(mx, v)
	}
	var s float32
	for i, v := range row {
		e := exp32(v - mx)
		row[i] = e
		s += e
	}
	inv := 1 / s
	for i := range row {
		row[i] *= inv
	}
}

func geluScalar(x []float32) {
	for i, v := range x {
		// 0.5 (1 + tanh(u)) = sigmoid(2u)
		u := 2 * geluC * (v + geluA*v*v*v)
		x[i] = v / (1 + exp32(-u))
	}
}

func siluMulScalar(gate, up []float32) {
	for i, g := range gate {
		gate[i] = g / (1 + exp32(-g)) * up[i]
	}
}

// SoftmaxRows replaces each row of n values of x (len(x) a multiple of n) by its softmax.
func SoftmaxRows(x []float32, n int) {
	if n <= 0 || len(x)%n != 0 {
		panic("hostops.SoftmaxRows: length is not a multiple of the row length")
	}
	rows := len(x) / n
	parallel(rows, max(1, 1<<16/n), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			softmaxRow(x[r*n : (r+1)*n])
		}
	})
}

// CausalSoftmaxRows is SoftmaxRows for causal attention scores: x holds groups of n rows of n
// values (query i, key j), and row i's softmax covers keys 0..i; keys after i are set to 0
// whatever they held.
func CausalSoftmaxRows(x []float32, n int) { CausalSoftmaxRowsMasked(x, n, 0, nil) }

// MaskedScore is what CausalSoftmaxRowsMasked writes over a masked score before the softmax
// (layers.MaskedScore): exp of it next to any unmasked score is exactly 0, and a row with every
// key masked gets uniform weights.
const MaskedScore = -1e30

// CausalSoftmaxRowsMasked is CausalSoftmaxRows where some keys are also masked: the rows come in
// batches of rowsPerBatch (a multiple of n), and masked[b*n+i] lists the keys j <= i that query i
// of batch b may not attend (nil masked: none).
func CausalSoftmaxRowsMasked(x []float32, n, rowsPerBatch int, masked [][]int32) {
	if n <= 0 || len(x)%(n*n) != 0 || (masked != nil && (rowsPerBatch <= 0 || rowsPerBatch%n != 0 || len(x)/n%rowsPerBatch != 0)) {
		panic("hostops.CausalSoftmaxRows: length is not a multiple of n*n, or rows per batch do not divide it")
	}
	rows := len(x) / n
	parallel(rows, max(1, 1<<16/n), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := x[r*n : (r+1)*n]
			q := r % n
			if masked != nil {
				for _, j := range masked[r/rowsPerBatch*n+q] {
					row[j] = MaskedScore
				}
			}
			softmaxRow(row[:q+1])
			clear(row[q+1:])
		}
	})
}

// GeluTanh replaces x by GELU's tanh approximation (gelu_pytorch_tanh), computed as
// x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3), which equals 0.5 x (1 + tanh(u)).
func GeluTanh(x []float32) {
	parallel(len(x), 1<<14, func(lo, hi int) { geluSlice(x[lo:hi]) })
}

// SiLUMul replaces gate by silu(gate) * up (Qwen2's MLP before down_proj).
func SiLUMul(gate, up []float32) {
	if len(gate) != len(up) {
		panic("hostops.SiLUMul: gate and up differ in length")
	}
	parallel(len(gate), 1<<14, func(lo, hi int) { siluMulPair(gate[lo:hi], up[lo:hi]) })
}

// parallel runs fn over [0, n) cut into one contiguous range per core (none smaller than
// grain), the calling goroutine taking the first.
func parallel(n, grain int, fn func(lo, hi int)) {
	parts := min(runtime.GOMAXPROCS(0), max(1, n/grain))
	if parts <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for p := 1; p < parts; p++ {
		wg.Add(1)
		go func(lo, hi int) { defer wg.Done(); fn(lo, hi) }(p*n/parts, (p+1)*n/parts)
	}
	fn(0, n/parts)
	wg.Wait()
}
