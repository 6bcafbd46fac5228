package jpeg

// Upsampling (libjpeg's jdsample.c with do_fancy_upsampling = TRUE) and colour conversion
// (jdcolor.c), followed by what PIL does to reach mode "RGB".

// libjpeg's YCbCr->RGB tables: 16 fractional bits, rounded with ONE_HALF.
var crR, cbB, crG, cbG [256]int32

func init() {
	const scale = 16
	const half = 1 << (scale - 1)
	fix := func(x float64) int32 { return int32(x*(1<<scale) + 0.5) }
	for i := range 256 {
		x := int32(i - 128)
		crR[i] = (fix(1.40200)*x + half) >> scale
		cbB[i] = (fix(1.77200)*x + half) >> scale
		crG[i] = -fix(0.71414) * x
		cbG[i] = -fix(0.34414)*x + half
	}
}

func clip(v int32) uint8 {
	if uint32(v) > 255 {
		if v < 0 {
			return 0
		}
		return 255
	}
	return uint8(v)
}

// finishProgressive runs the inverse DCT over the coefficient buffers.
func (d *decoder) finishProgressive() {
	if d.smoothingNeeded() {
		for ci := range d.comps {
			d.smoothComponent(&d.comps[ci])
			d.comps[ci].coefs = nil
		}
		return
	}
	var blk [64]int32
	for ci := range d.comps {
		c := &d.comps[ci]
		if c.q == nil { // never scanned: libjpeg would need a table; all coefficients are zero
			var zero [64]int32
			c.q = &zero
		}
		stride := 8 * c.bw
		for by := 0; by < c.bh; by++ {
			for bx := 0; bx < c.bw; bx++ {
				src := c.coefs[64*(by*c.bw+bx):][:64]
				for i, v := range src {
					blk[i] = int32(v)
				}
				idctISlow(&blk, c.q, c.plane[8*by*stride+8*bx:], stride)
			}
		}
		c.coefs = nil
	}
}

// upsampler produces full-resolution rows of one component.
type upsampler struct {
	c      *component
	hr, vr int // expansion factors
	fancy  bool
	stride int
	row    []uint8 // output row buffer (for non-identity methods)
	sum    []int32 // column sums for 2-D fancy upsampling
}

func newUpsampler(d *decoder, c *component) *upsampler {
	u := &upsampler{c: c, hr: d.maxH / c.h, vr: d.maxV / c.v, stride: 8 * c.bw}
	switch {
	case u.hr == 1 && u.vr == 1:
	case u.hr == 2 && u.vr == 1, u.hr == 2 && u.vr == 2:
		u.fancy = c.dsW > 2
	case u.hr == 1 && u.vr == 2:
		u.fancy = true
	}
	u.row = make([]uint8, u.hr*c.dsW+u.hr)
	u.sum = make([]int32, c.dsW)
	return u
}

// rowAt returns output row y (at least width samples). The returned slice may alias the plane or
// an internal buffer valid until the next call.
func (u *upsampler) rowAt(y int) []uint8 {
	c := u.c
	plane := c.plane
	in := func(r int) []uint8 { return plane[r*u.stride : r*u.stride+c.dsW] }
	if u.hr == 1 && u.vr == 1 {
		return in(y)
	}
	if !u.fancy {
		src := in(y / u.vr)
		o := u.row
		for x, v := range src {
			for k := 0; k < u.hr; k++ {
				o[x*u.hr+k] = v
			}
		}
		return o
	}
	w := c.dsW
	o := u.row
	if u.vr == 1 { // h2v1: 3/4 nearer + 1/4 further, biases 1 (left output) and 2 (right output)
		src := in(y)
		o[0] = src[0]
		o[1] = uint8((3*int32(src[0]) + int32(src[1]) + 2) >> 2)
		for x := 1; x < w-1; x++ {
			v := 3 * int32(src[x])
			o[2*x] = uint8((v + int32(src[x-1]) + 1) >> 2)
			o[2*x+1] = uint8((v + int32(src[x+1]) + 2) >> 2)
		}
		v := 3 * int32(src[w-1])
		o[2*w-2] = uint8((v + int32(src[w-2]) + 1) >> 2)
		o[2*w-1] = src[w-1]
		return o
	}
	// Vertical triangle filter: the nearer input row and the next nearer one (above for even
	// output rows, below for odd), edges replicated.
	r0 := y / 2
	r1 := r0 - 1
	if y&1 == 1 {
		r1 = r0 + 1
	}
	r1 = max(0, min(r1, c.dsH-1))
	a, b := in(r0), in(r1)
	if u.hr == 1 { // h1v2: (3*nearer + further + bias) >> 2, bias 1 above, 2 below
		bias := int32(1)
		if y&1 == 1 {
			bias = 2
		}
		for x := 0; x < w; x++ {
			o[x] = uint8((3*int32(a[x]) + int32(b[x]) + bias) >> 2)
		}
		return o
	}
	// h2v2: column sums then the horizontal triangle, /16 with biases 8 and 7.
	s := u.sum
	for x := 0; x < w; x++ {
		s[x] = 3*int32(a[x]) + int32(b[x])
	}
	o[0] = uint8((4*s[0] + 8) >> 4)
	o[1] = uint8((3*s[0] + s[1] + 7) >> 4)
	for x := 1; x < w-1; x++ {
		o[2*x] = uint8((3*s[x] + s[x-1] + 8) >> 4)
		o[2*x+1] = uint8((3*s[x] + s[x+1] + 7) >> 4)
	}
	o[2*w-2] = uint8((3*s[w-1] + s[w-2] + 8) >> 4)
	o[2*w-1] = uint8((4*s[w-1] + 7) >> 4)
	return o
}

// toRGB upsamples, converts colour and applies PIL's conversion to mode "RGB".
func (d *decoder) toRGB() (*RGB8, error) {
	if d.progressive {
		d.finishProgressive()
	}
	d.decideColor()
	w, h := d.width, d.height
	out := &RGB8{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	ups := make([]*upsampler, len(d.comps))
	for i := range d.comps {
		ups[i] = newUpsampler(d, &d.comps[i])
	}
	switch d.transform {
	case csGray:
		u := ups[0]
		for y := 0; y < h; y++ {
			src := u.rowAt(y)[:w]
			o := out.Pix[3*y*w : 3*(y+1)*w]
			for x, v := range src {
				o[3*x], o[3*x+1], o[3*x+2] = v, v, v
			}
		}
	case csYCbCr:
		for y := 0; y < h; y++ {
			Y := ups[0].rowAt(y)[:w]
			Cb := ups[1].rowAt(y)[:w]
			Cr := ups[2].rowAt(y)[:w]
			o := out.Pix[3*y*w : 3*(y+1)*w]
			for x := range Y {
				yy, cb, cr := int32(Y[x]), Cb[x], Cr[x]
				o[3*x] = clip(yy + crR[cr])
				o[3*x+1] = clip(yy + (cbG[cb]+crG[cr])>>16)
				o[3*x+2] = clip(yy + cbB[cb])
			}
		}
	case csRGB:
		for y := 0; y < h; y++ {
			R := ups[0].rowAt(y)[:w]
			G := ups[1].rowAt(y)[:w]
			B := ups[2].rowAt(y)[:w]
			o := out.Pix[3*y*w : 3*(y+1)*w]
			for x := range R {
				o[3*x], o[3*x+1], o[3*x+2] = R[x], G[x], B[x]
			}
		}
	case csCMYK, csYCCK:
		// libjpeg outputs CMYK (converting YCCK: each of C, M, Y is 255 minus the RGB value);
		// PIL reads it as Adobe-inverted "CMYK;I" and converts with cmyk2rgb.
		var cmyk [4]uint8
		for y := 0; y < h; y++ {
			rows := [4][]uint8{ups[0].rowAt(y)[:w], ups[1].rowAt(y)[:w], ups[2].rowAt(y)[:w], ups[3].rowAt(y)[:w]}
			o := out.Pix[3*y*w : 3*(y+1)*w]
			for x := 0; x < w; x++ {
				if d.transform == csYCCK {
					yy, cb, cr := int32(rows[0][x]), rows[1][x], rows[2][x]
					cmyk[0] = clip(255 - (yy + crR[cr]))
					cmyk[1] = clip(255 - (yy + (cbG[cb]+crG[cr])>>16))
					cmyk[2] = clip(255 - (yy + cbB[cb]))
				} else {
					cmyk[0], cmyk[1], cmyk[2] = rows[0][x], rows[1][x], rows[2][x]
				}
				cmyk[3] = rows[3][x]
				// PIL: invert ("CMYK;I"), then nk = 255 - k; out = clip(nk - MULDIV255(c, nk)).
				nk := int32(cmyk[3]) // 255 - (255 - k)
				for ch := 0; ch < 3; ch++ {
					cv := 255 - int32(cmyk[ch])
					t := cv*nk + 128
					o[3*x+ch] = clip(nk - ((t>>8)+t)>>8)
				}
			}
		}
	}
	return out, nil
}
