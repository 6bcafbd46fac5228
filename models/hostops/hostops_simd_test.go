//go:build amd64 && goexperiment.simd

package hostops

import (
	"math"
	"simd/archsimd"
	"testing"
)

// The vector exp against float64 math.Exp over float32's range, as TestExp32 checks the scalar one.
func TestExpAVX512(t *testing.T) {
	if !archsimd.X86.AVX512() {
		t.Skip("no AVX-512 on this CPU")
	}
	k := newExpConsts()
	var in, out [16]float32
	check := func() {
		k.exp(archsimd.LoadFloat32x16(&in)).Store(&out)
		for i, x := range in {
			want := math.Exp(float64(x))
			switch {
			case want > math.MaxFloat32:
				if !math.IsInf(float64(out[i]), 1) {
					t.Fatalf("exp(%g) = %g, want +Inf", x, out[i])
				}
			case want < 1e-37:
				if math.Abs(float64(out[i])-want) > 1e-44 {
					t.Fatalf("exp(%g) = %g, want %g", x, out[i], want)
				}
			case !close32(out[i], want, 3e-7, 0):
				t.Fatalf("exp(%g) = %.9g, want %.9g (rel %.2g)", x, out[i], want, math.Abs(float64(out[i])-want)/want)
			}
			if s := exp32(x); math.Abs(float64(s)-float64(out[i])) > 2e-7*math.Abs(float64(out[i]))+1e-44 {
				t.Fatalf("exp(%g): vector %.9g, scalar %.9g", x, out[i], s)
			}
		}
	}
	n := 0
	for x := -110.0; x <= 89; x += 0.0071 {
		in[n] = float32(x)
		if n++; n == 16 {
			check()
			n = 0
		}
	}
	in = [16]float32{float32(math.Inf(-1)), float32(math.Inf(1)), 0, -0.0, 1, -1, 88.72, -87.33, 1e-30, -1e-30}
	check()
	if out[0] != 0 || !math.IsInf(float64(out[1]), 1) {
		t.Fatalf("exp(-Inf), exp(+Inf) = %g, %g; want 0, +Inf", out[0], out[1])
	}
}
