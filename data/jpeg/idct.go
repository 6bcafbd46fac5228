package jpeg

// The "islow" inverse DCT of libjpeg (jidctint.c): the Loeffler-Ligtenberg-Moschytz factorization
// in 32-bit fixed point with 13 fractional bits for the constants, two extra bits of precision kept
// between the column and the row pass, and results rounded, level-shifted by 128 and clamped.
// Every intermediate rounding below is the one libjpeg-turbo performs, so the output is bit-exact.

const (
	constBits = 13
	pass1Bits = 2

	fix0_298631336 = 2446
	fix0_390180644 = 3196
	fix0_541196100 = 4433
	fix0_765366865 = 6270
	fix0_899976223 = 7373
	fix1_175875602 = 9633
	fix1_501321110 = 12299
	fix1_847759065 = 15137
	fix1_961570560 = 16069
	fix2_053119869 = 16819
	fix2_562915447 = 20995
	fix3_072711026 = 25172
)

// clampSample maps a rounded, not yet level-shifted IDCT output to a sample. libjpeg-turbo's x86
// SIMD IDCT (the one PIL runs) saturates; its C version wraps values beyond +-512 through a 1024-entry
// table. Both agree on every value a real encoder can produce.
func clampSample(v int32) uint8 {
	v += 128
	if uint32(v) > 255 {
		if v < 0 {
			return 0
		}
		return 255
	}
	return uint8(v)
}

// idctISlow transforms one block of quantized coefficients (natural order) with quantization
// table q and writes 8 rows of 8 samples to out (row stride stride).
func idctISlow(in *[64]int32, q *[64]int32, out []uint8, stride int) {
	var ws [64]int32
	// Pass 1: columns, results scaled up by 2^pass1Bits.
	for col := 0; col < 8; col++ {
		if in[8+col] == 0 && in[16+col] == 0 && in[24+col] == 0 && in[32+col] == 0 &&
			in[40+col] == 0 && in[48+col] == 0 && in[56+col] == 0 {
			dc := in[col] * q[col] << pass1Bits
			for r := 0; r < 8; r++ {
				ws[8*r+col] = dc
			}
			continue
		}
		// Even part.
		z2 := in[16+col] * q[16+col]
		z3 := in[48+col] * q[48+col]
		z1 := (z2 + z3) * fix0_541196100
		tmp2 := z1 - z3*fix1_847759065
		tmp3 := z1 + z2*fix0_765366865
		z2 = in[col] * q[col]
		z3 = in[32+col] * q[32+col]
		tmp0 := (z2 + z3) << constBits
		tmp1 := (z2 - z3) << constBits
		tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
		tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2
		// Odd part.
		t0 := in[56+col] * q[56+col]
		t1 := in[40+col] * q[40+col]
		t2 := in[24+col] * q[24+col]
		t3 := in[8+col] * q[8+col]
		o0, o1, o2, o3 := oddPart(t0, t1, t2, t3)
		const sh = constBits - pass1Bits
		const rnd = 1 << (sh - 1)
		ws[col] = (tmp10 + o3 + rnd) >> sh
		ws[56+col] = (tmp10 - o3 + rnd) >> sh
		ws[8+col] = (tmp11 + o2 + rnd) >> sh
		ws[48+col] = (tmp11 - o2 + rnd) >> sh
		ws[16+col] = (tmp12 + o1 + rnd) >> sh
		ws[40+col] = (tmp12 - o1 + rnd) >> sh
		ws[24+col] = (tmp13 + o0 + rnd) >> sh
		ws[32+col] = (tmp13 - o0 + rnd) >> sh
	}
	// Pass 2: rows.
	for row := 0; row < 8; row++ {
		w := ws[8*row : 8*row+8 : 8*row+8]
		o := out[row*stride : row*stride+8 : row*stride+8]
		if w[1] == 0 && w[2] == 0 && w[3] == 0 && w[4] == 0 && w[5] == 0 && w[6] == 0 && w[7] == 0 {
			const sh = pass1Bits + 3
			v := clampSample((w[0] + 1<<(sh-1)) >> sh)
			for i := range o {
				o[i] = v
			}
			continue
		}
		z2, z3 := w[2], w[6]
		z1 := (z2 + z3) * fix0_541196100
		tmp2 := z1 - z3*fix1_847759065
		tmp3 := z1 + z2*fix0_765366865
		tmp0 := (w[0] + w[4]) << constBits
		tmp1 := (w[0] - w[4]) << constBits
		tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
		tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2
		o0, o1, o2, o3 := oddPart(w[7], w[5], w[3], w[1])
		const sh = constBits + pass1Bits + 3
		const rnd = 1 << (sh - 1)
		o[0] = clampSample((tmp10 + o3 + rnd) >> sh)
		o[7] = clampSample((tmp10 - o3 + rnd) >> sh)
		o[1] = clampSample((tmp11 + o2 + rnd) >> sh)
		o[6] = clampSample((tmp11 - o2 + rnd) >> sh)
		o[2] = clampSample((tmp12 + o1 + rnd) >> sh)
		o[5] = clampSample((tmp12 - o1 + rnd) >> sh)
		o[3] = clampSample((tmp13 + o0 + rnd) >> sh)
		o[4] = clampSample((tmp13 - o0 + rnd) >> sh)
	}
}

// oddPart computes the odd half of the 8-point IDCT from inputs 7, 5, 3, 1.
func oddPart(t0, t1, t2, t3 int32) (int32, int32, int32, int32) {
	z1 := t0 + t3
	z2 := t1 + t2
	z3 := t0 + t2
	z4 := t1 + t3
	z5 := (z3 + z4) * fix1_175875602
	t0 *= fix0_298631336
	t1 *= fix2_053119869
	t2 *= fix3_072711026
	t3 *= fix1_501321110
	z1 *= -fix0_899976223
	z2 *= -fix2_562915447
	z3 = z3*-fix1_961570560 + z5
	z4 = z4*-fix0_390180644 + z5
	return t0 + z1 + z3, t1 + z2 + z4, t2 + z2 + z3, t3 + z1 + z4
}
