// Package jpeg decodes JPEG files to 8-bit RGB exactly as PIL's Image.open(p).convert("RGB") does
// when PIL is built on libjpeg-turbo (Pillow 9.4 on libjpeg-turbo 2.1 here, the TinyLLaVA setup).
//
// Go's image/jpeg uses a different inverse DCT and chroma upsampling, which moves 2-5% of the
// pixel values of a typical photo by 1-3 levels. This decoder instead reproduces, bit for bit,
// the arithmetic libjpeg-turbo applies with its default decompression parameters (the ones PIL
// uses):
//
//   - the "islow" integer inverse DCT (jidctint.c: CONST_BITS 13, PASS1_BITS 2, clamped output);
//   - "fancy" (triangle-filter) chroma upsampling for 2x1, 2x2 and 1x2 subsampling with
//     libjpeg's alternating rounding biases (jdsample.c), box replication otherwise and for
//     subsampled widths of at most 2;
//   - YCbCr->RGB with libjpeg's 16-bit fixed-point tables (jdcolor.c), and YCCK->CMYK;
//   - libjpeg's colour-space guess (JFIF / Adobe APP14 transform / component ids);
//   - libjpeg's inter-block smoothing for progressive files whose scans leave some low-frequency
//     AC coefficients incomplete (jdcoefct.c decompress_smooth_data; see smooth.go);
//   - PIL's own handling of the result: grey replicated to RGB, CMYK JPEGs read with Adobe's
//     inverted polarity ("CMYK;I") and converted with PIL's cmyk2rgb.
//
// Supported: baseline, extended-sequential and progressive Huffman JPEGs, 8-bit samples, 1, 3 or 4
// components, any integral sampling factors up to 4, restart intervals. Not supported (an error
// names them): arithmetic coding, lossless and hierarchical JPEG, 12-bit samples, DNL-defined heights.
//
// Differences from PIL by design: a truncated or corrupt entropy-coded segment is an error
// (libjpeg pads with zeros and only warns; TinyLLaVA's LOAD_TRUNCATED_IMAGES keeps the partial
// image), and so is a progressive file that ends without EOI. A sequential file missing only its
// EOI decodes. For coefficients or quantizers far outside what an encoder produces, libjpeg-turbo's
// own C and SIMD paths disagree (wrap-around vs saturation); this decoder saturates like the SIMD
// path PIL runs on x86-64.
package jpeg

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
)

// RGB8 is a decoded image: 8-bit RGB, row-major, 3 bytes per pixel, no padding between rows.
// It implements image.Image (opaque color.RGBA pixels).
type RGB8 struct {
	W, H int
	Pix  []uint8 // len 3*W*H; pixel (x, y) channel c is Pix[3*(y*W+x)+c]
}

// ColorModel implements image.Image.
func (m *RGB8) ColorModel() color.Model { return color.RGBAModel }

// Bounds implements image.Image: the rectangle (0, 0)-(W, H).
func (m *RGB8) Bounds() image.Rectangle { return image.Rect(0, 0, m.W, m.H) }

// At implements image.Image.
func (m *RGB8) At(x, y int) color.Color {
	if x < 0 || y < 0 || x >= m.W || y >= m.H {
		return color.RGBA{}
	}
	i := 3 * (y*m.W + x)
	return color.RGBA{m.Pix[i], m.Pix[i+1], m.Pix[i+2], 255}
}

// ErrTruncated is wrapped by the errors for data that ends too early.
var ErrTruncated = errors.New("jpeg: truncated data")

// UnsupportedError reports a valid JPEG feature this decoder does not implement.
type UnsupportedError string

func (e UnsupportedError) Error() string { return "jpeg: unsupported: " + string(e) }

// FormatError reports invalid or corrupt data.
type FormatError string

func (e FormatError) Error() string { return "jpeg: invalid data: " + string(e) }

func formatErr(format string, args ...any) error { return FormatError(fmt.Sprintf(format, args...)) }

// maxPixels is PIL's decompression-bomb limit (2 * Image.MAX_IMAGE_PIXELS): larger images are
// refused before anything is allocated. Tests lower it.
var maxPixels = 2 * 89478485

// Decode reads a whole JPEG stream from r and decodes it.
func Decode(r io.Reader) (*RGB8, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return DecodeBytes(b)
}

// DecodeBytes decodes a JPEG held in memory. It does not retain b.
func DecodeBytes(b []byte) (*RGB8, error) {
	d := &decoder{data: b}
	if err := d.decode(); err != nil {
		return nil, err
	}
	return d.toRGB()
}

// Config returns the dimensions and the number of components without decoding the image.
func Config(b []byte) (w, h, components int, err error) {
	d := &decoder{data: b, headerOnly: true}
	if err := d.decode(); err != nil {
		return 0, 0, 0, err
	}
	return d.width, d.height, len(d.comps), nil
}

// Markers.
const (
	mSOF0  = 0xC0
	mSOF1  = 0xC1
	mSOF2  = 0xC2
	mDHT   = 0xC4
	mDAC   = 0xCC
	mRST0  = 0xD0
	mRST7  = 0xD7
	mSOI   = 0xD8
	mEOI   = 0xD9
	mSOS   = 0xDA
	mDQT   = 0xDB
	mDNL   = 0xDC
	mDRI   = 0xDD
	mAPP0  = 0xE0
	mAPP14 = 0xEE
	mAPP15 = 0xEF
	mCOM   = 0xFE
	mTEM   = 0x01
)

type component struct {
	id        uint8
	h, v      int // sampling factors
	tq        int // quantization table selector
	q         *[64]int32
	bw, bh    int // blocks per row / column of the padded (MCU-aligned) grid
	wBlocks   int // blocks per row / column a non-interleaved scan covers
	hBlocks   int
	dsW, dsH  int     // downsampled width / height in samples
	coefs     []int16 // progressive only: 64 natural-order coefficients per block of the padded grid
	plane     []uint8 // samples, stride 8*bw, 8*bh rows
	dcPred    int
	dcTab     int
	acTab     int
	coefBits  [10]int // progressive: Al of the last scan of zigzag coefficients 0..9, -1 if none yet
	scanned   bool    // appeared in a scan
	usedInSOS bool
}

type decoder struct {
	data       []byte
	pos        int
	headerOnly bool

	qt      [4][64]int32 // natural order; values as libjpeg's 16-bit multiplier table holds them
	qtSet   [4]bool
	dcTabs  [4]huffTable
	acTabs  [4]huffTable
	sofSeen bool

	width, height int
	progressive   bool
	comps         []component
	maxH, maxV    int
	mcusX, mcusY  int

	restartInterval int
	jfif, adobe     bool
	adobeTransform  uint8
	colorDecided    bool
	transform       int // colour space of the stored data, see cs* constants

	eobrun int
	scans  int
}

// Colour space of the coded data (libjpeg's jpeg_color_space).
const (
	csGray = iota
	csYCbCr
	csRGB
	csCMYK
	csYCCK
)

func (d *decoder) u16(p int) int { return int(d.data[p])<<8 | int(d.data[p+1]) }

// nextMarker returns the code of the next marker at or after d.pos, skipping stray bytes and
// 0xFF fill bytes as libjpeg does, and leaves d.pos after the marker code. ok is false at the end
// of the data.
func (d *decoder) nextMarker() (code byte, ok bool) {
	for {
		for d.pos < len(d.data) && d.data[d.pos] != 0xFF {
			d.pos++
		}
		for d.pos < len(d.data) && d.data[d.pos] == 0xFF {
			d.pos++
		}
		if d.pos >= len(d.data) {
			return 0, false
		}
		c := d.data[d.pos]
		d.pos++
		if c != 0 { // FF 00 is a stuffed zero, not a marker
			return c, true
		}
	}
}

// segment returns the payload of the variable-length marker segment starting at d.pos and
// advances past it.
func (d *decoder) segment(name string) ([]byte, error) {
	if d.pos+2 > len(d.data) {
		return nil, fmt.Errorf("%w: %s segment length missing", ErrTruncated, name)
	}
	n := d.u16(d.pos)
	if n < 2 {
		return nil, formatErr("%s segment length %d", name, n)
	}
	if d.pos+n > len(d.data) {
		return nil, fmt.Errorf("%w: %s segment of %d bytes, %d left", ErrTruncated, name, n, len(d.data)-d.pos)
	}
	p := d.data[d.pos+2 : d.pos+n]
	d.pos += n
	return p, nil
}

func (d *decoder) decode() error {
	if len(d.data) < 2 || d.data[0] != 0xFF || d.data[1] != mSOI {
		return FormatError("missing SOI marker (not a JPEG file)")
	}
	d.pos = 2
	for {
		code, ok := d.nextMarker()
		if !ok {
			if d.scans > 0 && !d.headerOnly {
				// A sequential file whose scans covered every component is complete without its
				// EOI (PIL with LOAD_TRUNCATED_IMAGES, as TinyLLaVA runs it, gives the same image).
				// A progressive one may be missing scans: truncated.
				complete := !d.progressive
				for i := range d.comps {
					complete = complete && d.comps[i].scanned
				}
				if complete {
					return nil
				}
				return fmt.Errorf("%w: %s data ends after %d scans without EOI", ErrTruncated, d.kind(), d.scans)
			}
			if !d.sofSeen {
				return fmt.Errorf("%w: no frame header (SOF) before the end of the data", ErrTruncated)
			}
			return fmt.Errorf("%w: no scan (SOS) before the end of the data", ErrTruncated)
		}
		switch {
		case code == mSOF0 || code == mSOF1 || code == mSOF2:
			if d.sofSeen {
				return FormatError("more than one frame header (SOF)")
			}
			p, err := d.segment("SOF")
			if err != nil {
				return err
			}
			if err := d.parseSOF(p, code == mSOF2); err != nil {
				return err
			}
			if d.headerOnly {
				return nil
			}
		case code == 0xC3 || code == 0xC7 || code == 0xCB || code == 0xCF:
			return UnsupportedError("lossless JPEG")
		case code == 0xC5 || code == 0xC6 || code == 0xCD || code == 0xCE:
			return UnsupportedError("hierarchical JPEG")
		case code == 0xC9 || code == 0xCA:
			return UnsupportedError("arithmetic coding")
		case code == mDHT:
			p, err := d.segment("DHT")
			if err != nil {
				return err
			}
			if err := d.parseDHT(p); err != nil {
				return err
			}
		case code == mDAC:
			return UnsupportedError("arithmetic coding")
		case code == mDQT:
			p, err := d.segment("DQT")
			if err != nil {
				return err
			}
			if err := d.parseDQT(p); err != nil {
				return err
			}
		case code == mDRI:
			p, err := d.segment("DRI")
			if err != nil {
				return err
			}
			if len(p) != 2 {
				return formatErr("DRI segment of %d bytes", len(p))
			}
			d.restartInterval = int(p[0])<<8 | int(p[1])
		case code == mSOS:
			if !d.sofSeen {
				return FormatError("scan (SOS) before the frame header (SOF)")
			}
			p, err := d.segment("SOS")
			if err != nil {
				return err
			}
			if err := d.scan(p); err != nil {
				return err
			}
		case code == mEOI:
			if d.scans == 0 {
				if !d.sofSeen {
					return FormatError("no frame header (SOF) before EOI")
				}
				return FormatError("no scan (SOS) before EOI")
			}
			return nil
		case code >= mAPP0 && code <= mAPP15 || code == mCOM:
			p, err := d.segment("APP/COM")
			if err != nil {
				return err
			}
			d.examineAPP(code, p) // only those before the first scan count (decideColor)
		case code >= mRST0 && code <= mRST7 || code == mTEM || code == mSOI:
			// Parameterless markers out of place: libjpeg skips them.
		case code == mDNL:
			if _, err := d.segment("DNL"); err != nil {
				return err
			}
		default:
			return formatErr("unknown marker 0xFF%02X at offset %d", code, d.pos-2)
		}
	}
}

// examineAPP records JFIF and Adobe markers seen before the first scan (libjpeg's rules:
// APP0 with at least 14 bytes starting "JFIF\0", APP14 with at least 12 bytes starting "Adobe").
func (d *decoder) examineAPP(code byte, p []byte) {
	switch code {
	case mAPP0:
		if len(p) >= 14 && string(p[:5]) == "JFIF\x00" {
			d.jfif = true
		}
	case mAPP14:
		if len(p) >= 12 && string(p[:5]) == "Adobe" {
			d.adobe = true
			d.adobeTransform = p[11]
		}
	}
}

func (d *decoder) parseSOF(p []byte, progressive bool) error {
	if len(p) < 6 {
		return formatErr("SOF segment of %d bytes", len(p))
	}
	if p[0] != 8 {
		return UnsupportedError(fmt.Sprintf("%d-bit samples", p[0]))
	}
	d.height = int(p[1])<<8 | int(p[2])
	d.width = int(p[3])<<8 | int(p[4])
	nc := int(p[5])
	if d.height == 0 {
		return UnsupportedError("image height defined by a DNL marker (height 0 in SOF)")
	}
	if d.width == 0 {
		return FormatError("image width 0")
	}
	if nc != 1 && nc != 3 && nc != 4 {
		return UnsupportedError(fmt.Sprintf("%d components (PIL reads 1, 3 or 4)", nc))
	}
	if len(p) != 6+3*nc {
		return formatErr("SOF segment of %d bytes for %d components", len(p), nc)
	}
	if d.width*d.height > maxPixels {
		return formatErr("image of %dx%d pixels exceeds the decompression-bomb limit of %d pixels", d.width, d.height, maxPixels)
	}
	d.sofSeen = true
	d.progressive = progressive
	d.comps = make([]component, nc)
	d.maxH, d.maxV = 1, 1
	for i := range d.comps {
		c := &d.comps[i]
		q := p[6+3*i:]
		c.id = q[0]
		c.h, c.v = int(q[1]>>4), int(q[1]&15)
		c.tq = int(q[2])
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 {
			return formatErr("component %d sampling factors %dx%d", c.id, c.h, c.v)
		}
		if c.tq > 3 {
			return formatErr("component %d quantization table %d", c.id, c.tq)
		}
		d.maxH, d.maxV = max(d.maxH, c.h), max(d.maxV, c.v)
	}
	d.mcusX = ceilDiv(d.width, 8*d.maxH)
	d.mcusY = ceilDiv(d.height, 8*d.maxV)
	for i := range d.comps {
		c := &d.comps[i]
		if d.maxH%c.h != 0 || d.maxV%c.v != 0 {
			return UnsupportedError(fmt.Sprintf("fractional sampling factors (%dx%d with maximum %dx%d)", c.h, c.v, d.maxH, d.maxV))
		}
		c.dsW = ceilDiv(d.width*c.h, d.maxH)
		c.dsH = ceilDiv(d.height*c.v, d.maxV)
		c.wBlocks = ceilDiv(c.dsW, 8)
		c.hBlocks = ceilDiv(c.dsH, 8)
		c.bw = d.mcusX * c.h
		c.bh = d.mcusY * c.v
		if nc == 1 {
			// A single component is always coded non-interleaved.
			c.bw, c.bh = c.wBlocks, c.hBlocks
		}
	}
	if d.headerOnly {
		return nil
	}
	for i := range d.comps {
		c := &d.comps[i]
		c.plane = make([]uint8, 64*c.bw*c.bh)
		if progressive {
			c.coefs = make([]int16, 64*c.bw*c.bh)
			c.coefBits = [10]int{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1}
		}
	}
	return nil
}

func (d *decoder) kind() string {
	if d.progressive {
		return "progressive JPEG"
	}
	return "JPEG"
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func (d *decoder) parseDQT(p []byte) error {
	for len(p) > 0 {
		pq, tq := int(p[0]>>4), int(p[0]&15)
		if tq > 3 {
			return formatErr("DQT table id %d", tq)
		}
		if pq > 1 {
			return formatErr("DQT precision %d", pq)
		}
		n := 64 * (pq + 1)
		if len(p) < 1+n {
			return formatErr("DQT segment too short for table %d", tq)
		}
		for k := 0; k < 64; k++ {
			var v int
			if pq == 0 {
				v = int(p[1+k])
			} else {
				v = int(p[1+2*k])<<8 | int(p[2+2*k])
			}
			// libjpeg-turbo keeps the islow multipliers in 16-bit signed integers.
			d.qt[tq][unzig[k]] = int32(int16(v))
		}
		d.qtSet[tq] = true
		p = p[1+n:]
	}
	return nil
}

func (d *decoder) parseDHT(p []byte) error {
	for len(p) > 0 {
		if len(p) < 17 {
			return FormatError("DHT segment too short")
		}
		tc, th := int(p[0]>>4), int(p[0]&15)
		if tc > 1 || th > 3 {
			return formatErr("DHT table class %d id %d", tc, th)
		}
		var counts [16]int
		total := 0
		for i := range counts {
			counts[i] = int(p[1+i])
			total += counts[i]
		}
		if total > 256 {
			return formatErr("DHT table with %d symbols", total)
		}
		if len(p) < 17+total {
			return FormatError("DHT segment too short for its symbols")
		}
		t := &d.dcTabs[th]
		if tc == 1 {
			t = &d.acTabs[th]
		}
		if err := t.build(counts, p[17:17+total], tc == 0); err != nil {
			return err
		}
		p = p[17+total:]
	}
	return nil
}

// decideColor applies libjpeg's guess of the coded colour space (jdapimin.c), using the markers
// seen before the first scan.
func (d *decoder) decideColor() {
	if d.colorDecided {
		return
	}
	d.colorDecided = true
	switch len(d.comps) {
	case 1:
		d.transform = csGray
	case 3:
		d.transform = csYCbCr
		switch {
		case d.jfif:
		case d.adobe:
			if d.adobeTransform == 0 {
				d.transform = csRGB
			}
		default:
			if d.comps[0].id == 'R' && d.comps[1].id == 'G' && d.comps[2].id == 'B' {
				d.transform = csRGB
			}
		}
	case 4:
		d.transform = csCMYK
		if d.adobe && d.adobeTransform != 0 {
			d.transform = csYCCK
		}
	}
}
