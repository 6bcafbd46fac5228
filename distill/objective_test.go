package distill

import (
	"math"
	"math/rand"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

func TestParseDivergence(t *testing.T) {
	for _, d := range Divergences {
		got, err := ParseDivergence(" " + strings.ToUpper(string(d)) + " ")
		if err != nil || got != d {
			t.Errorf("ParseDivergence(%q) = %q, %v", d, got, err)
		}
	}
	_, err := ParseDivergence("kl")
	if err == nil || !strings.Contains(err.Error(), "dbild, bild, fkl, rkl, jsd, none") {
		t.Errorf("ParseDivergence(kl): error %v should list the valid names", err)
	}
}

func TestDefaults(t *testing.T) {
	o := DefaultObjectiveOptions()
	if o.WCE != 1 || o.WAlign != 1 || o.WVSD != 1 || o.Align != DivDBiLD || o.VSD != DivDBiLD || o.Tau != 3 || o.BiLDK != 8 {
		t.Errorf("DefaultObjectiveOptions = %+v", o)
	}
	if d := DefaultDBiLDOptions(); d != (DBiLDOptions{Tau: 3, Window: 64, KMin: 4, KMax: 64}) {
		t.Errorf("DefaultDBiLDOptions = %+v", d)
	}
}

func randT(rng *rand.Rand, scale float64, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(rng.NormFloat64() * scale)
	}
	return tensors.FromFlatDataAndDimensions(data, dims...)
}

// The objective is the weighted sum of its parts, each part is the named divergence, and the
// teacher gets no gradient while z_S and z_W do.
func TestObjectiveComposition(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	const n, vt, vs = 6, 40, 36
	zT, zS, zW := randT(rng, 2, n, vt), randT(rng, 2, n, vs), randT(rng, 2, n, vt)
	labels := tensors.FromFlatDataAndDimensions([]int32{1, 5, 7, 35, -100, 0}, n)
	mask := tensors.FromFlatDataAndDimensions([]float32{1, 1, 1, 1, 0, 1}, n)
	for _, pair := range [][2]Divergence{{DivDBiLD, DivDBiLD}, {DivBiLD, DivFKL}, {DivRKL, DivJSD}, {DivNone, DivDBiLD}} {
		opts := DefaultObjectiveOptions()
		opts.WCE, opts.WAlign, opts.WVSD = 0.5, 2, 0.25
		opts.Align, opts.VSD = pair[0], pair[1]
		opts.DBiLD.Window = 16
		e := MustNewExec(backend(), func(in []*Node) []*Node {
			tr := Objective(in[0], in[1], in[2], in[3], in[4], opts)
			ce := CE(in[1], in[3], in[4])
			al := ApplyDivergence(opts.Align, in[0], in[1], in[4], opts)
			vsd := ApplyDivergence(opts.VSD, in[0], in[2], in[4], opts)
			manual := Add(Add(MulScalar(ce, 0.5), MulScalar(al, 2)), MulScalar(vsd, 0.25))
			loss := MaskedMean(tr.Total, in[4])
			grads := Gradient(loss, in[0], in[1], in[2])
			return []*Node{tr.Total, manual, grads[0], grads[1], grads[2]}
		})
		out := e.MustExec(zT, zS, zW, labels, mask)
		total, manual := tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[float32](out[1])
		for i := range total {
			if math.Abs(float64(total[i]-manual[i])) > 1e-5*math.Abs(float64(manual[i])) {
				t.Errorf("%v: position %d: total %g != weighted parts %g", pair, i, total[i], manual[i])
			}
		}
		if total[4] != 0 {
			t.Errorf("%v: padding position has loss %g", pair, total[4])
		}
		for _, v := range tensors.MustCopyFlatData[float32](out[2]) {
			if v != 0 {
				t.Fatalf("%v: teacher logits got a gradient", pair)
			}
		}
		for j, o := range out[3:] {
			nz := 0
			for _, v := range tensors.MustCopyFlatData[float32](o) {
				if v != 0 {
					nz++
				}
				if math.IsNaN(float64(v)) {
					t.Fatalf("%v: NaN gradient", pair)
				}
			}
			if nz == 0 {
				t.Errorf("%v: no gradient reaches input %d", pair, j+1)
			}
		}
	}
}

// MaskedMean accumulates in float64: 2^20 copies of 1.1 average to float32(1.1), which a one-by-one
// float32 sum does not give.
func TestMaskedMeanFloat64(t *testing.T) {
	const n = 1 << 20
	x := make([]float32, n)
	m := make([]float32, n)
	for i := range x {
		x[i] = 1.1
		m[i] = 1
	}
	x[7], m[7] = float32(math.NaN()), 0 // padding rows never leak
	var naive float32
	for i := range x {
		if m[i] > 0 {
			naive += x[i]
		}
	}
	seg := make([]int32, n)
	for i := range seg {
		seg[i] = int32(i % 3)
	}
	e := MustNewExec(backend(), func(a, b, s *Node) []*Node {
		return []*Node{MaskedMean(a, b), SegmentMean(a, b, s, 4)}
	})
	out := e.MustExec(tensors.FromFlatDataAndDimensions(x, n), tensors.FromFlatDataAndDimensions(m, n), tensors.FromFlatDataAndDimensions(seg, n))
	got := tensors.MustCopyFlatData[float32](out[0])[0]
	if got != float32(1.1) {
		t.Errorf("MaskedMean = %.9g, want %.9g (one-by-one float32 would give %.9g)", got, float32(1.1), naive/float32(n-1))
	}
	segs := tensors.MustCopyFlatData[float32](out[1])
	if segs[0] != float32(1.1) || segs[1] != float32(1.1) || segs[2] != float32(1.1) || segs[3] != 0 {
		t.Errorf("SegmentMean = %v", segs)
	}
}
