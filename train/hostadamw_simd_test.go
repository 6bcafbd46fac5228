//go:build amd64 && goexperiment.simd

package train

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"simd/archsimd"
)

// Each vector AdamW kernel this CPU has gives applyScalar's bits, over lengths with and without
// a tail, with and without weight decay, across gradient magnitudes from 0 to 1e4.
func TestVectorAdamWMatchesScalar(t *testing.T) {
	kernels := map[string]func(p, g, m, v []float32, decays bool, s adamScalars) int{}
	if archsimd.X86.AVX512() {
		kernels["avx512"] = applyAVX512
	}
	if archsimd.X86.AVX2() {
		kernels["avx2"] = applyAVX2
	}
	if len(kernels) == 0 {
		t.Skip("no AVX2 or AVX-512 on this CPU")
	}
	if applyVector == nil {
		t.Fatal("the CPU has a vector kernel but applyHost does not use it")
	}
	opt := DefaultAdamW()
	rng := rand.New(rand.NewPCG(5, 6))
	for name, kernel := range kernels {
		for _, n := range []int{0, 7, 16, 33, 1000, 4099} {
			for _, decays := range []bool{false, true} {
				p, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
				for i := range p {
					p[i] = float32(rng.NormFloat64())
					g[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(9)-4)))
					if i%11 == 0 {
						g[i] = 0
					}
					m[i] = float32(rng.NormFloat64() * 1e-2)
					v[i] = float32(rng.Float64() * 1e-3)
				}
				p2, m2, v2 := slices.Clone(p), slices.Clone(m), slices.Clone(v)
				for step := 1; step <= 3; step++ {
					s := opt.scalars(1e-3, float32(step), 0.5)
					applyScalar(p, g, m, v, decays, s)
					k := kernel(p2, g, m2, v2, decays, s)
					if k > n || n-k >= 16 {
						t.Fatalf("%s n=%d: kernel covered %d values", name, n, k)
					}
					applyScalar(p2[k:], g[k:], m2[k:], v2[k:], decays, s)
				}
				for i := range p {
					if math.Float32bits(p[i]) != math.Float32bits(p2[i]) || math.Float32bits(m[i]) != math.Float32bits(m2[i]) ||
						math.Float32bits(v[i]) != math.Float32bits(v2[i]) {
						t.Fatalf("%s n=%d decays=%v: value %d: p %v/%v m %v/%v v %v/%v", name, n, decays, i, p[i], p2[i], m[i], m2[i], v[i], v2[i])
					}
				}
			}
		}
	}
}

// BenchmarkApplyHost compares one AdamW pass over 16M values with the scalar loop and the
// vector kernel (single goroutine): GOEXPERIMENT=simd go test -run XXX -bench ApplyHost ./train
func BenchmarkApplyHost(b *testing.B) {
	const n = 16 << 20
	p, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range p {
		p[i], g[i], m[i], v[i] = float32(i%1000)*1e-3, float32(i%777)*1e-4-0.03, 1e-3, 1e-4
	}
	s := DefaultAdamW().scalars(1e-3, 1, 1)
	b.Run("scalar", func(b *testing.B) {
		b.SetBytes(7 * 4 * n)
		for b.Loop() {
			applyScalar(p, g, m, v, true, s)
		}
	})
	b.Run("vector", func(b *testing.B) {
		b.SetBytes(7 * 4 * n)
		for b.Loop() {
			applyHost(p, g, m, v, true, s)
		}
	})
}
