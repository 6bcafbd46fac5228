//go:build amd64 && goexperiment.simd

package hostops

import "simd/archsimd"

// AVX-512 kernels (16 lanes): the scalar formulas per lane, with fused multiply-adds in the
// polynomial. Row tails shorter than a vector go through the scalar loop.
func init() {
	if archsimd.X86.AVX512() {
		vector = true
		softmaxRow, geluSlice, siluMulPair = softmaxAVX512, geluAVX512, siluMulAVX512
	}
}

type expConsts struct {
	lo, hi, log2e, ln2Hi, ln2Lo, c1, c2, c3, c4, c5, c6, one archsimd.Float32x16
}

func newExpConsts() expConsts {
	b := archsimd.BroadcastFloat32x16
	return expConsts{b(expMin), b(expMax), b(log2e), b(ln2Hi), b(ln2Lo), b(c1), b(c2), b(c3), b(c4), b(c5), b(c6), b(1)}
}

func (k *expConsts) exp(x archsimd.Float32x16) archsimd.Float32x16 {
	x = x.Max(k.lo).Min(k.hi)
	n := x.Mul(k.log2e).RoundToEvenScaled(0)
	r := x.Sub(n.Mul(k.ln2Hi)).Sub(n.Mul(k.ln2Lo))
	p := k.c1.MulAdd(r, k.c2).MulAdd(r, k.c3).MulAdd(r, k.c4).MulAdd(r, k.c5).MulAdd(r, k.c6)
	p = p.Mul(r).MulAdd(r, r).Add(k.one)
	return p.Scale(n)
}

func softmaxAVX512(row []float32) {
	k := newExpConsts()
	n := len(row) / 16 * 16
	var lanes [16]float32
	mx := float32(-3.4028234663852886e38)
	if n > 0 {
		m := archsimd.LoadFloat32x16Slice(row)
		for i := 16; i < n; i += 16 {
			m = m.Max(archsimd.LoadFloat32x16Slice(row[i:]))
		}
		m.Store(&lanes)
		for _, v := range lanes {
			mx = max(mx, v)
		}
	}
	for _, v := range row[n:] {
		mx = max(mx, v)
	}
	mv := archsimd.BroadcastFloat32x16(mx)
	sum := archsimd.BroadcastFloat32x16(0)
	for i := 0; i < n; i += 16 {
		e := k.exp(archsimd.LoadFloat32x16Slice(row[i:]).Sub(mv))
		e.StoreSlice(row[i:])
		sum = sum.Add(e)
	}
	sum.Store(&lanes)
	var s float32
	for _, v := range lanes {
		s += v
	}
	for i, v := range row[n:] {
		e := exp32(v - mx)
		row[n+i] = e
		s += e
	}
	inv := 1 / s
	iv := archsimd.BroadcastFloat32x16(inv)
	for i := 0; i < n; i += 16 {
		archsimd.LoadFloat32x16Slice(row[i:]).Mul(iv).StoreSlice(row[i:])
	}
	for i := n; i < len(row); i++ {
		row[i] *= inv
	}
}

func geluAVX512(x []float32) {
	k := newExpConsts()
	a, c := archsimd.BroadcastFloat32x16(geluA), archsimd.BroadcastFloat32x16(-2*geluC)
	n := len(x) / 16 * 16
	for i := 0; i < n; i += 16 {
		v := archsimd.LoadFloat32x16Slice(x[i:])
		// -2u = -2 sqrt(2/pi) (v + a v^3) = (-2 sqrt(2/pi) v) (1 + a v^2)
		u := v.Mul(c).Mul(v.Mul(v).MulAdd(a, k.one))
		v.Div(k.exp(u).Add(k.one)).StoreSlice(x[i:])
	}
	geluScalar(x[n:])
}

func siluMulAVX512(gate, up []float32) {
	k := newExpConsts()
	neg := archsimd.BroadcastFloat32x16(-1)
	n := len(gate) / 16 * 16
	for i := 0; i < n; i += 16 {
		g := archsimd.LoadFloat32x16Slice(gate[i:])
		s := g.Div(k.exp(g.Mul(neg)).Add(k.one))
		s.Mul(archsimd.LoadFloat32x16Slice(up[i:])).StoreSlice(gate[i:])
	}
	siluMulScalar(gate[n:], up[n:])
}
