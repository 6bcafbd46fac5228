package data

import "math"

// Port of Pillow's ImagingResample (src/libImaging/Resample.c) for 8-bit images with the BICUBIC
// filter (a = -0.5), the path PIL's Image.resize((w, h), Image.BICUBIC) takes for an "RGB" image when
// no box and no reducing_gap are given (as the Hugging Face image processors call it):
//   - per output pixel, the filter support (2) is scaled by the downscale factor (>= 1), weights are
//     evaluated at (x + xmin - center + 0.5) / filterscale in float64 and normalised to sum 1;
//   - weights are converted to fixed point with 22 fractional bits (PRECISION_BITS = 32-8-2), rounding
//     half away from zero;
//   - accumulation starts at 1<<21 (rounding), the result is >> 22 and clipped to [0, 255];
//   - the horizontal pass runs first (only if the width changes), its uint8 output feeds the vertical
//     pass (only if the height changes).
// Float expressions keep C's evaluation order and are written so Go cannot fuse them into FMAs.

const precisionBits = 32 - 8 - 2

func bicubicFilter(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 {
		// ((a + 2.0) * x - (a + 3.0)) * x * x + 1
		t := float64((a+2.0)*x) - (a + 3.0)
		t = float64(t * x)
		t = float64(t * x)
		return t + 1
	}
	if x < 2 {
		// (((x - 5) * x + 8) * x - 4) * a
		t := float64((x-5)*x) + 8
		t = float64(t*x) - 4
		return t * a
	}
	return 0
}

// resampleCoeffs mirrors precompute_coeffs + normalize_coeffs_8bpc for box [0, inSize).
// It returns ksize, bounds (xmin, count per output) and fixed-point weights (outSize*ksize).
func resampleCoeffs(inSize, outSize int) (int, []int, []int32) {
	scale := float64(float32(inSize)) / float64(outSize)
	filterscale := scale
	if filterscale < 1 {
		filterscale = 1
	}
	support := 2.0 * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	bounds := make([]int, 2*outSize)
	kk := make([]int32, outSize*ksize)
	k := make([]float64, ksize)
	invFilterscale := 1.0 / filterscale
	for xx := 0; xx < outSize; xx++ {
		center := float64((float64(xx) + 0.5) * scale) // in0 = 0
		ww := 0.0
		xmin := int(center - support + 0.5) // C (int) truncates toward zero
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		for x := 0; x < xmax; x++ {
			arg := float64(float64(float64(x+xmin)-center)+0.5) * invFilterscale
			w := bicubicFilter(arg)
			k[x] = w
			ww += w
		}
		for x := xmax; x < ksize; x++ {
			k[x] = 0
		}
		if ww != 0 {
			for x := 0; x < xmax; x++ {
				k[x] /= ww
			}
		}
		for x := 0; x < ksize; x++ {
			v := float64(k[x] * (1 << precisionBits))
			if k[x] < 0 {
				kk[xx*ksize+x] = int32(-0.5 + v)
			} else {
				kk[xx*ksize+x] = int32(0.5 + v)
			}
		}
		bounds[2*xx] = xmin
		bounds[2*xx+1] = xmax
	}
	return ksize, bounds, kk
}

// clip8fixed is Pillow's clip8: the lookup table covers in>>22 in [-640, 640); outside that range
// it would read out of bounds in C, which cannot happen for normalised bicubic weights.
func clip8fixed(ss int32) uint8 {
	v := ss >> precisionBits
	if v <= 0 {
		return 0
	}
	if v >= 255 {
		return 255
	}
	return uint8(v)
}

// ResizeBicubic resizes src to w x h like PIL's img.resize((w, h), Image.BICUBIC).
// Sizes must be positive; the same size returns a copy.
func ResizeBicubic(src *RGB, w, h int) *RGB {
	cur := src
	if w != src.W {
		ksize, bounds, kk := resampleCoeffs(src.W, w)
		out := &RGB{W: w, H: cur.H, Pix: make([]uint8, 3*w*cur.H)}
		for y := 0; y < cur.H; y++ {
			in := cur.Pix[3*y*cur.W : 3*(y+1)*cur.W]
			o := out.Pix[3*y*w : 3*(y+1)*w]
			for xx := 0; xx < w; xx++ {
				xmin, n := bounds[2*xx], bounds[2*xx+1]
				k := kk[xx*ksize : xx*ksize+n]
				s0, s1, s2 := int32(1<<(precisionBits-1)), int32(1<<(precisionBits-1)), int32(1<<(precisionBits-1))
				p := in[3*xmin:]
				for x, kv := range k {
					s0 += int32(p[3*x]) * kv
					s1 += int32(p[3*x+1]) * kv
					s2 += int32(p[3*x+2]) * kv
				}
				o[3*xx], o[3*xx+1], o[3*xx+2] = clip8fixed(s0), clip8fixed(s1), clip8fixed(s2)
			}
		}
		cur = out
	}
	if h != src.H {
		ksize, bounds, kk := resampleCoeffs(src.H, h)
		out := &RGB{W: cur.W, H: h, Pix: make([]uint8, 3*cur.W*h)}
		rowLen := 3 * cur.W
		acc := make([]int32, rowLen)
		for yy := 0; yy < h; yy++ {
			ymin, n := bounds[2*yy], bounds[2*yy+1]
			k := kk[yy*ksize : yy*ksize+n]
			for i := range acc {
				acc[i] = 1 << (precisionBits - 1)
			}
			for y, kv := range k {
				row := cur.Pix[(ymin+y)*rowLen : (ymin+y+1)*rowLen]
				for i, v := range row {
					acc[i] += int32(v) * kv
				}
			}
			o := out.Pix[yy*rowLen : (yy+1)*rowLen]
			for i, s := range acc {
				o[i] = clip8fixed(s)
			}
		}
		cur = out
	}
	if cur == src {
		cp := &RGB{W: src.W, H: src.H, Pix: append([]uint8(nil), src.Pix...)}
		return cp
	}
	return cur
}
