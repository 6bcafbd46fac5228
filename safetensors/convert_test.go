package safetensors

import (
	"math"
	"math/rand"
	"path/filepath"
	"sort"
	"testing"
)

// refF16 decodes binary16 with float64 arithmetic (independent of the table).
func refF16(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e := int(h>>10) & 0x1f
	m := float64(h & 0x3ff)
	switch e {
	case 0:
		return sign * math.Ldexp(m, -24)
	case 31:
		if m == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1024+m, e-25)
}

func TestF16DecodeExhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		got := math.Float32bits(F16ToFloat32(h))
		ref := refF16(h)
		if math.IsNaN(ref) {
			// NaN: sign and payload kept, quiet bit set (x86 F16C / PyTorch).
			want := uint32(h&0x8000)<<16 | 0x7fc00000 | uint32(h&0x3ff)<<13
			if got != want {
				t.Fatalf("F16 %04x: got %08x, want %08x", h, got, want)
			}
			continue
		}
		if want := math.Float32bits(float32(ref)); got != want {
			t.Fatalf("F16 %04x: got %08x, want %08x (%g)", h, got, want, ref)
		}
	}
}

func TestBF16DecodeExact(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		if got := math.Float32bits(BF16ToFloat32(uint16(i))); got != uint32(i)<<16 {
			t.Fatalf("BF16 %04x -> %08x", i, got)
		}
	}
}

// f16Finite holds the non-negative finite binary16 values in increasing order.
var f16Finite = func() []float64 {
	v := make([]float64, 0x7c00)
	for h := range v {
		v[h] = refF16(uint16(h))
	}
	return v
}()

// refToF16 rounds by searching the table of binary16 values: nearest, ties
// to the even encoding, overflow to infinity at >= 65520.
func refToF16(x float32) uint16 {
	u := math.Float32bits(x)
	sign := uint16(u>>16) & 0x8000
	if x != x {
		return sign | 0x7e00
	}
	a := math.Abs(float64(x))
	if a >= 65520 {
		return sign | 0x7c00
	}
	i := sort.SearchFloat64s(f16Finite, a) // first value >= a
	if i < len(f16Finite) && f16Finite[i] == a {
		return sign | uint16(i)
	}
	lo := i - 1
	dl := a - f16Finite[lo]
	var dh float64
	if i == len(f16Finite) {
		dh = 65536 - a // one step past 65504 is the infinity threshold
	} else {
		dh = f16Finite[i] - a
	}
	h := i
	if dl < dh || (dl == dh && lo%2 == 0) {
		h = lo
	}
	return sign | uint16(h)
}

// refToBF16 rounds by comparing the two neighbouring bfloat16 values.
func refToBF16(x float32) uint16 {
	u := math.Float32bits(x)
	if x != x {
		return uint16(u>>16)&0x8000 | 0x7fc0
	}
	if u&0x7fffffff == 0x7f800000 || u&0xffff == 0 {
		return uint16(u >> 16)
	}
	lo := u & 0xffff0000
	val := func(bits uint32) float64 {
		if bits&0x7fffffff == 0x7f800000 { // one step past the largest finite
			return math.Copysign(math.Ldexp(1, 128), float64(x))
		}
		return float64(math.Float32frombits(bits))
	}
	dl := math.Abs(float64(x) - val(lo))
	dh := math.Abs(val(lo+0x10000) - float64(x))
	if dl < dh || (dl == dh && lo&0x10000 == 0) {
		return uint16(lo >> 16)
	}
	return uint16((lo + 0x10000) >> 16)
}

func f16TestInputs() []float32 {
	var in []float32
	for h := 0; h < 0x7c00; h++ {
		v := f16Finite[h]
		in = append(in, float32(v), float32(-v))
		if h+1 < len(f16Finite) {
			mid := (v + f16Finite[h+1]) / 2 // exact in float32
			m := float32(mid)
			in = append(in, m, -m, math.Nextafter32(m, 0), math.Nextafter32(m, 1e9))
		}
	}
	in = append(in, 65519.996, 65520, 65536, float32(math.Inf(1)), float32(math.Inf(-1)))
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 1<<20; i++ {
		in = append(in, math.Float32frombits(r.Uint32()))
	}
	return in
}

func TestFloat32ToF16(t *testing.T) {
	for _, x := range f16TestInputs() {
		got, want := Float32ToF16(x), refToF16(x)
		if got != want {
			t.Fatalf("Float32ToF16(%g = %08x) = %04x, reference %04x", x, math.Float32bits(x), got, want)
		}
	}
	if got := Float32ToF16(float32(math.NaN())); got&0x7fff != 0x7e00 {
		t.Errorf("NaN -> %04x", got)
	}
}

func TestFloat32ToBF16(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	in := []float32{0, float32(math.Copysign(0, -1)), math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32}
	for i := 0; i < 1<<21; i++ {
		u := r.Uint32()
		in = append(in, math.Float32frombits(u), math.Float32frombits(u&0xffff0000|0x8000), math.Float32frombits(u&0xffff0000|0x7fff))
	}
	for _, x := range in {
		if got, want := Float32ToBF16(x), refToBF16(x); got != want {
			t.Fatalf("Float32ToBF16(%08x) = %04x, reference %04x", math.Float32bits(x), got, want)
		}
	}
}

// TestEncodeMatchesTorch converts the fixture's float32 source values with
// the writer's conversion and compares with the bytes torch produced.
func TestEncodeMatchesTorch(t *testing.T) {
	src, err := Open(filepath.Join("testdata", "f32.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, dt := range []DType{BF16, F16} {
		ref, err := Open(filepath.Join("testdata", map[DType]string{BF16: "bf16", F16: "f16"}[dt]+".safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		for _, pair := range [][2]string{{"rand_src", "rand"}, {"special", "special"}} {
			x, err := src.Float32(pair[0])
			if err != nil {
				t.Fatal(err)
			}
			want, err := ref.Raw(pair[1])
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(x)*2)
			encodeFloat32(dt, x, got)
			gw, gg := u16s(want), u16s(got)
			for i := range gw {
				wn := dt == BF16 && gw[i]&0x7fff > 0x7f80 || dt == F16 && gw[i]&0x7fff > 0x7c00
				gn := dt == BF16 && gg[i]&0x7fff > 0x7f80 || dt == F16 && gg[i]&0x7fff > 0x7c00
				if wn || gn {
					// torch's vectorised BF16 path writes every NaN as 0xFFFF;
					// only NaN-ness is compared.
					if wn != gn {
						t.Errorf("%s %s[%d] (%08x): got %04x, torch %04x", dt, pair[0], i, math.Float32bits(x[i]), gg[i], gw[i])
					}
					continue
				}
				if gg[i] != gw[i] {
					t.Errorf("%s %s[%d] (%08x): got %04x, torch %04x", dt, pair[0], i, math.Float32bits(x[i]), gg[i], gw[i])
				}
			}
		}
		ref.Close()
	}
}

// TestConversionPaths checks the in-place (little-endian reinterpretation)
// paths against the portable byte-by-byte ones, with unaligned buffers too.
func TestConversionPaths(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	const n = 1001
	raw := make([]byte, n*8+1)
	r.Read(raw)
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = math.Float32frombits(r.Uint32())
	}
	run := func(le bool, dt DType, off int) ([]uint32, []byte) {
		old := nativeLE
		nativeLE = le
		defer func() { nativeLE = old }()
		dst := make([]float32, n)
		decodeFloat32(dt, raw[off:off+n*dt.Size()], dst)
		enc := make([]byte, n*dt.Size()+off)
		encodeFloat32(dt, vals, enc[off:])
		return f32sBits(dst), enc[off:]
	}
	for _, dt := range []DType{F32, F64, F16, BF16} {
		for _, off := range []int{0, 1} {
			d1, e1 := run(true, dt, off)
			d0, e0 := run(false, dt, off)
			for i := range d1 {
				if d1[i] != d0[i] {
					t.Fatalf("%s off %d: decode[%d] %08x vs %08x", dt, off, i, d1[i], d0[i])
				}
			}
			if string(e1) != string(e0) {
				t.Fatalf("%s off %d: encodings differ", dt, off)
			}
		}
	}
}
