package hostops

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Each kernel runs both ways where the vector kernels exist: vector (as built) and scalar.
func bothPaths(t *testing.T, fn func(t *testing.T)) {
	t.Run("built", fn)
	if Vector() {
		t.Run("scalar", func(t *testing.T) {
			s, g, m := softmaxRow, geluSlice, siluMulPair
			softmaxRow, geluSlice, siluMulPair = softmaxScalar, geluScalar, siluMulScalar
			defer func() { softmaxRow, geluSlice, siluMulPair = s, g, m }()
			fn(t)
		})
	}
}

func close32(got float32, want, rel, abs float64) bool {
	if math.IsInf(want, 0) {
		return float64(got) == want
	}
	return math.Abs(float64(got)-want) <= abs+rel*math.Abs(want)
}

func TestExp32(t *testing.T) {
	for x := -110.0; x <= 89; x += 0.0137 {
		got, want := exp32(float32(x)), math.Exp(float64(float32(x)))
		if want < 1e-37 { // float32 denormals and below: absolute error only
			if math.Abs(float64(got)-want) > 1e-44 {
				t.Fatalf("exp32(%g) = %g, want %g", x, got, want)
			}
			continue
		}
		if want > math.MaxFloat32 {
			if !math.IsInf(float64(got), 1) {
				t.Fatalf("exp32(%g) = %g, want +Inf", x, got)
			}
			continue
		}
		if !close32(got, want, 3e-7, 0) {
			t.Fatalf("exp32(%g) = %.9g, want %.9g (rel %.2g)", x, got, want, math.Abs(float64(got)-want)/want)
		}
	}
	if got := exp32(float32(math.Inf(-1))); got != 0 {
		t.Fatalf("exp32(-Inf) = %g, want 0", got)
	}
}

func TestSoftmaxRows(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for _, n := range []int{1, 2, 15, 16, 17, 33, 729} {
			for _, scale := range []float64{1, 30, 1e4} {
				rows := 5
				x := make([]float32, rows*n)
				for i := range x {
					x[i] = float32(rng.NormFloat64() * scale)
				}
				if n > 3 {
					x[2] = -1e30 // a masked score
				}
				want := make([]float64, len(x))
				for r := range rows {
					mx := math.Inf(-1)
					for _, v := range x[r*n : (r+1)*n] {
						mx = max(mx, float64(v))
					}
					var s float64
					for i := r * n; i < (r+1)*n; i++ {
						want[i] = math.Exp(float64(x[i]) - mx)
						s += want[i]
					}
					for i := r * n; i < (r+1)*n; i++ {
						want[i] /= s
					}
				}
				SoftmaxRows(x, n)
				for i := range x {
					if !close32(x[i], want[i], 2e-6, 1e-12) {
						t.Fatalf("n=%d scale=%g: softmax[%d] = %.9g, want %.9g", n, scale, i, x[i], want[i])
					}
				}
			}
		}
	})
}

func TestCausalSoftmaxRows(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		for _, n := range []int{1, 5, 40} {
			groups := 3
			x := make([]float32, groups*n*n)
			for i := range x {
				x[i] = float32(rng.NormFloat64() * 4)
			}
			orig := append([]float32(nil), x...)
			CausalSoftmaxRows(x, n)
			for g := range groups {
				for q := range n {
					base := (g*n + q) * n
					var s float64
					for j := 0; j <= q; j++ {
						s += math.Exp(float64(orig[base+j]))
					}
					for j := range n {
						want := 0.0
						if j <= q {
							want = math.Exp(float64(orig[base+j])) / s
						}
						if !close32(x[base+j], want, 2e-6, 1e-12) {
							t.Fatalf("n=%d group %d query %d key %d: %.9g, want %.9g", n, g, q, j, x[base+j], want)
						}
					}
				}
			}
		}
	})
}

func TestCausalSoftmaxRowsMasked(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		const n, batches, heads = 21, 2, 3 // rows per batch: heads * n
		x := make([]float32, batches*heads*n*n)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * 3)
		}
		// Batch 0: keys 0..4 masked (left padding); batch 1: key 7 masked for queries >= 7.
		masked := make([][]int32, batches*n)
		for q := range n {
			for j := 0; j <= min(q, 4); j++ {
				masked[q] = append(masked[q], int32(j))
			}
			if q >= 7 {
				masked[n+q] = []int32{7}
			}
		}
		orig := append([]float32(nil), x...)
		CausalSoftmaxRowsMasked(x, n, heads*n, masked)
		for b := range batches {
			for h := range heads {
				for q := range n {
					base := ((b*heads+h)*n + q) * n
					allowed := func(j int) bool {
						if j > q {
							return false
						}
						if b == 0 {
							return j > 4 || q <= 4 // a query whose keys are all masked: uniform
						}
						return !(q >= 7 && j == 7)
					}
					var s float64
					for j := range n {
						if allowed(j) {
							s += math.Exp(float64(orig[base+j]))
						}
					}
					for j := range n {
						want := 0.0
						switch {
						case b == 0 && q <= 4:
							if j <= q {
								want = 1 / float64(q+1)
							}
						case allowed(j):
							want = math.Exp(float64(orig[base+j])) / s
						}
						if !close32(x[base+j], want, 2e-6, 1e-12) {
							t.Fatalf("batch %d head %d query %d key %d: %.9g, want %.9g", b, h, q, j, x[base+j], want)
						}
					}
				}
			}
		}
	})
}

func TestGeluTanh(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		var x []float32
		for v := -30.0; v <= 30; v += 0.00731 {
			x = append(x, float32(v))
		}
		x = append(x, 1e4, -1e4, 0, float32(math.Inf(1)))
		orig := append([]float32(nil), x...)
		GeluTanh(x)
		for i, v := range orig {
			f := float64(v)
			// 0.5 f (1 + tanh(u)) in float64, written as f sigmoid(2u) so that tanh's rounding
			// to -1 does not cancel the tail for large negative f.
			want := f / (1 + math.Exp(-2*math.Sqrt(2/math.Pi)*(f+0.044715*f*f*f)))
			if math.IsInf(f, 1) {
				want = f
			}
			if !close32(x[i], want, 2e-6, 1e-7) { // deep in the tail the float32 argument's rounding dominates
				t.Fatalf("gelu(%g) = %.9g, want %.9g", v, x[i], want)
			}
		}
	})
}

func TestSiLUMul(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		n := 50001
		g, u := make([]float32, n), make([]float32, n)
		for i := range g {
			g[i], u[i] = float32(rng.NormFloat64()*8), float32(rng.NormFloat64())
		}
		g[0], g[1] = 200, -200
		orig := append([]float32(nil), g...)
		SiLUMul(g, u)
		for i, v := range orig {
			f := float64(v)
			want := f / (1 + math.Exp(-f)) * float64(u[i])
			if !close32(g[i], want, 2e-6, 1e-30) {
				t.Fatalf("silu(%g)*%g = %.9g, want %.9g", v, u[i], g[i], want)
			}
		}
	})
}

func BenchmarkSoftmaxRows(b *testing.B) {
	n := 729
	x := make([]float32, 16*n*n)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		SoftmaxRows(x, n)
	}
}

func BenchmarkGeluTanh(b *testing.B) {
	x := make([]float32, 729*4304)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		GeluTanh(x)
	}
}
