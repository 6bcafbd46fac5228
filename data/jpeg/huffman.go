package jpeg

import "fmt"

// unzig[k] is the natural (row-major) index of the k-th coefficient in zigzag order. Entries
// 64..79 are 63, as in libjpeg: a corrupt run that overshoots the block lands on the last
// coefficient instead of being rejected.
var unzig [80]int

func init() {
	k := 0
	for s := 0; s < 15; s++ { // anti-diagonals x+y = s
		lo, hi := max(0, s-7), min(s, 7)
		if s%2 == 0 { // up-right: y decreasing
			for y := hi; y >= lo; y-- {
				unzig[k] = 8*y + (s - y)
				k++
			}
		} else {
			for y := lo; y <= hi; y++ {
				unzig[k] = 8*y + (s - y)
				k++
			}
		}
	}
	for ; k < len(unzig); k++ {
		unzig[k] = 63
	}
}

const lutBits = 9

// huffTable is a decoding table for one canonical Huffman code.
type huffTable struct {
	defined bool
	// lut maps the next lutBits bits to length<<8 | symbol; 0 for codes longer than lutBits.
	lut [1 << lutBits]uint16
	// For lengths l: maxcode[l] is the largest code of length l (-1 if none), valoff[l] the index
	// into vals of code 0 of that length (first symbol's index minus the first code).
	maxcode [17]int32
	valoff  [17]int32
	vals    [256]uint8
}

// build makes the table from a DHT definition, with libjpeg's validity checks.
func (t *huffTable) build(counts [16]int, syms []byte, dc bool) error {
	*t = huffTable{}
	if dc {
		for _, s := range syms {
			if s > 15 {
				return formatErr("DC Huffman table with symbol %d", s)
			}
		}
	}
	copy(t.vals[:], syms)
	code, p := int32(0), int32(0)
	for l := 1; l <= 16; l++ {
		n := int32(counts[l-1])
		// No code may be all ones (libjpeg: "Bogus Huffman table definition").
		if code+n >= 1<<l {
			return FormatError("bad Huffman table definition (code space overflow)")
		}
		t.valoff[l] = p - code
		if n == 0 {
			t.maxcode[l] = -1
		} else {
			for i := int32(0); i < n; i++ {
				c := code + i
				if l <= lutBits {
					shift := uint(lutBits - l)
					e := uint16(l)<<8 | uint16(syms[p+i])
					for j := c << shift; j < (c+1)<<shift; j++ {
						t.lut[j] = e
					}
				}
			}
			code += n
			p += n
			t.maxcode[l] = code - 1
		}
		code <<= 1
	}
	t.defined = true
	return nil
}

// bitReader reads the entropy-coded segment of a scan. Bits are kept left-aligned in acc. At a
// marker or the end of the data it supplies zero bits, as libjpeg does, but counts them so that a
// segment that really needed them is reported as truncated / corrupt.
type bitReader struct {
	data   []byte
	pos    int    // next byte; at a marker, the 0xFF that starts it
	acc    uint64 // left-aligned bits
	n      int    // bits in acc, including padding
	pad    int    // zero bits appended beyond the real data
	marker bool   // reached a marker or the end of the data
}

func (r *bitReader) reset(data []byte, pos int) {
	*r = bitReader{data: data, pos: pos}
}

// fill tops acc up to at least 57 bits.
func (r *bitReader) fill() {
	for r.n <= 56 {
		if r.marker {
			r.n += 8
			r.pad += 8
			continue
		}
		// Fast path: 0xFF-free bytes.
		if r.pos < len(r.data) {
			b := r.data[r.pos]
			if b != 0xFF {
				r.acc |= uint64(b) << uint(56-r.n)
				r.n += 8
				r.pos++
				continue
			}
		}
		if r.pos >= len(r.data) {
			r.marker = true
			continue
		}
		// 0xFF: fill bytes, then 0x00 (a stuffed 0xFF data byte) or a marker code.
		p := r.pos + 1
		for p < len(r.data) && r.data[p] == 0xFF {
			p++
		}
		if p >= len(r.data) {
			r.pos = len(r.data)
			r.marker = true
			continue
		}
		if r.data[p] != 0 {
			r.pos = p - 1
			r.marker = true
			continue
		}
		r.acc |= uint64(0xFF) << uint(56-r.n)
		r.n += 8
		r.pos = p + 1
	}
}

// overrun reports whether bits beyond the real data were consumed.
func (r *bitReader) overrun() bool { return r.n < r.pad }

func (r *bitReader) bits(s int) int {
	if r.n < s {
		r.fill()
	}
	v := int(r.acc >> uint(64-s))
	r.acc <<= uint(s)
	r.n -= s
	return v
}

func (r *bitReader) bit() bool {
	if r.n < 1 {
		r.fill()
	}
	v := r.acc>>63 != 0
	r.acc <<= 1
	r.n--
	return v
}

// receiveExtend reads s bits and sign-extends them as a JPEG magnitude category value.
func (r *bitReader) receiveExtend(s int) int {
	if s == 0 {
		return 0
	}
	v := r.bits(s)
	if v < 1<<uint(s-1) {
		v += -1<<uint(s) + 1
	}
	return v
}

// decode reads one Huffman-coded symbol.
func (r *bitReader) decode(t *huffTable) (uint8, error) {
	if r.n < 16 {
		r.fill()
	}
	if e := t.lut[r.acc>>(64-lutBits)]; e != 0 {
		l := int(e >> 8)
		r.acc <<= uint(l)
		r.n -= l
		return uint8(e), nil
	}
	code16 := int32(r.acc >> 48)
	for l := lutBits + 1; l <= 16; l++ {
		c := code16 >> uint(16-l)
		if c <= t.maxcode[l] {
			r.acc <<= uint(l)
			r.n -= l
			return t.vals[t.valoff[l]+c], nil
		}
	}
	if r.overrun() || r.n-r.pad < 16 && r.marker {
		return 0, r.truncErr()
	}
	return 0, FormatError("corrupt Huffman code in scan data")
}

func (r *bitReader) truncErr() error {
	if r.pos >= len(r.data) {
		return fmt.Errorf("%w: scan data ends early", ErrTruncated)
	}
	return formatErr("scan data ends early: marker 0xFF%02X inside an entropy-coded segment", r.markerCode())
}

func (r *bitReader) markerCode() byte {
	if r.pos+1 < len(r.data) {
		return r.data[r.pos+1]
	}
	return 0
}
