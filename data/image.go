package data

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	_ "image/gif"
	"os"

	"github.com/switchkd/switchkd/data/jpeg"

	// Decoders registered with image.Decode.
	_ "image/jpeg"
	_ "image/png"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"
)

// RGB is a straight (non-premultiplied) 8-bit RGB image, row-major, 3 bytes per pixel (HWC),
// the equivalent of a PIL "RGB" image.
type RGB struct {
	W, H int
	Pix  []uint8 // len 3*W*H; pixel (x, y) channel c is Pix[3*(y*W+x)+c]
}

// NewRGB allocates a w x h image filled with colour c.
func NewRGB(w, h int, c [3]uint8) *RGB {
	m := &RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	if c != [3]uint8{} {
		for i := 0; i < len(m.Pix); i += 3 {
			m.Pix[i], m.Pix[i+1], m.Pix[i+2] = c[0], c[1], c[2]
		}
	}
	return m
}

// At returns the pixel at (x, y).
func (m *RGB) At(x, y int) [3]uint8 {
	i := 3 * (y*m.W + x)
	return [3]uint8{m.Pix[i], m.Pix[i+1], m.Pix[i+2]}
}

// LoadImage reads and decodes an image file. PNG, JPEG, GIF (first frame), BMP, TIFF and WebP are
// supported. JPEG files are decoded by package data/jpeg to exactly PIL's RGB (a *jpeg.RGB8). The
// error names the file. For GIFs with a transparent colour index the palette entry's
// stored RGB is restored (Go's decoder zeroes it; PIL keeps it and convert("RGB") shows it).
// Unlike TinyLLaVA (which sets PIL's ImageFile.LOAD_TRUNCATED_IMAGES = True and silently trains on
// the partial image) a truncated file is an error. EXIF orientation is ignored, as PIL's open does.
func LoadImage(path string) (image.Image, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("data: reading image %q: %w", path, err)
	}
	var img image.Image
	var format string
	if len(raw) >= 2 && raw[0] == 0xFF && raw[1] == 0xD8 {
		// JPEG: decoded bit-exactly as PIL on libjpeg-turbo does (image/jpeg differs by a few levels).
		var m *jpeg.RGB8
		if m, err = jpeg.DecodeBytes(raw); err == nil {
			img, format = m, "jpeg"
		}
	} else {
		img, format, err = image.Decode(bytes.NewReader(raw))
	}
	if err != nil {
		return nil, fmt.Errorf("data: decoding image %q: %w", path, err)
	}
	if format == "gif" {
		if p, ok := img.(*image.Paletted); ok {
			restoreGIFTransparentEntry(raw, p)
		}
	}
	b := img.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 {
		return nil, fmt.Errorf("data: image %q is empty (%dx%d)", path, b.Dx(), b.Dy())
	}
	return img, nil
}

// restoreGIFTransparentEntry re-reads the colour table of the first frame of a GIF and puts back the
// RGB of the transparent index (as color.NRGBA with alpha 0). Malformed input leaves p unchanged
// (it was already decoded successfully by image/gif).
func restoreGIFTransparentEntry(raw []byte, p *image.Paletted) {
	if len(raw) < 13 {
		return
	}
	pos := 13
	var global []byte
	if flags := raw[10]; flags&0x80 != 0 {
		n := 3 * (1 << ((flags & 7) + 1))
		if pos+n > len(raw) {
			return
		}
		global = raw[pos : pos+n]
		pos += n
	}
	transparent := -1
	for pos < len(raw) {
		switch raw[pos] {
		case 0x21: // extension
			if pos+1 >= len(raw) {
				return
			}
			label := raw[pos+1]
			pos += 2
			first := true
			for pos < len(raw) {
				n := int(raw[pos])
				if pos+1+n > len(raw) {
					return
				}
				if label == 0xF9 && first && n >= 4 {
					if raw[pos+1]&1 != 0 {
						transparent = int(raw[pos+4])
					} else {
						transparent = -1
					}
				}
				first = false
				pos += 1 + n
				if n == 0 {
					break
				}
			}
		case 0x2C: // image descriptor: first frame
			if pos+10 > len(raw) {
				return
			}
			table := global
			if flags := raw[pos+9]; flags&0x80 != 0 {
				n := 3 * (1 << ((flags & 7) + 1))
				if pos+10+n > len(raw) {
					return
				}
				table = raw[pos+10 : pos+10+n]
			}
			if transparent < 0 || 3*transparent+2 >= len(table) || transparent >= len(p.Palette) {
				return
			}
			pal := make(color.Palette, len(p.Palette))
			copy(pal, p.Palette)
			t := table[3*transparent : 3*transparent+3]
			pal[transparent] = color.NRGBA{t[0], t[1], t[2], 0}
			p.Palette = pal
			return
		default:
			return
		}
	}
}

// ToRGB converts any decoded image to straight 8-bit RGB exactly as PIL's convert("RGB") does for the
// same file:
//   - NRGBA / NRGBA64 (PNG with alpha, GA): the stored colour, alpha dropped (16-bit: high byte).
//   - RGBA / RGBA64 (opaque PNG RGB, BMP, premultiplied TIFF): opaque pixels as stored; partially
//     transparent premultiplied pixels are un-premultiplied as PIL's "RGBa"->"RGB" (255*c/a, clipped),
//     alpha 0 keeps the stored value.
//   - Gray: replicated. Gray16: PIL opens 16-bit grey as mode "I"/"I;16" whose RGB conversion clips to
//     255 (it does not scale), so values >= 255 become 255; reproduced.
//   - Paletted: the palette's straight RGB, including for transparent entries.
//   - CMYK: PIL's cmyk2rgb (nk - c*nk/255 with PIL's rounding).
//   - *jpeg.RGB8 (JPEG files from LoadImage): already PIL's RGB, copied.
//   - YCbCr / NYCbCrA (image/jpeg or WebP decodes): libjpeg's fixed-point YCbCr->RGB tables and, for
//     4:2:0 and 4:2:2 chroma, libjpeg's "fancy" (triangle) upsampling. For an image/jpeg decode the
//     IDCT still differs from libjpeg's islow by 1-2 levels on a small fraction of pixels.
//
// Any other image type falls back to Go's NRGBA conversion.
func ToRGB(img image.Image) *RGB {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := &RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	px := out.Pix
	switch m := img.(type) {
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			o := px[3*y*w:]
			for x := 0; x < w; x++ {
				o[3*x], o[3*x+1], o[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}
	case *image.NRGBA64:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			o := px[3*y*w:]
			for x := 0; x < w; x++ {
				o[3*x], o[3*x+1], o[3*x+2] = row[8*x], row[8*x+2], row[8*x+4]
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			o := px[3*y*w:]
			for x := 0; x < w; x++ {
				a := uint32(row[4*x+3])
				for c := 0; c < 3; c++ {
					v := uint32(row[4*x+c])
					if a != 255 && a != 0 {
						v = min(255*v/a, 255)
					}
					o[3*x+c] = uint8(v)
				}
			}
		}
	case *image.RGBA64:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			o := px[3*y*w:]
			for x := 0; x < w; x++ {
				a := uint32(row[8*x+6])<<8 | uint32(row[8*x+7])
				for c := 0; c < 3; c++ {
					v := uint32(row[8*x+2*c])<<8 | uint32(row[8*x+2*c+1])
					if a != 0xffff && a != 0 {
						v = min(0xffff*v/a, 0xffff)
					}
					o[3*x+c] = uint8(v >> 8)
				}
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			o := px[3*y*w:]
			for x := 0; x < w; x++ {
				v := row[x]
				o[3*x], o[3*x+1], o[3*x+2] = v, v, v
			}
		}
	case *image.Gray16:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			o := px[3*y*w:]
			for x := 0; x < w; x++ {
				v := uint8(min(uint32(row[2*x])<<8|uint32(row[2*x+1]), 255))
				o[3*x], o[3*x+1], o[3*x+2] = v, v, v
			}
		}
	case *image.Paletted:
		var lut [256][3]uint8 // indices past the palette map to black, like PIL's zero-padded palette
		for i, c := range m.Palette {
			if i < 256 {
				lut[i] = straightRGB(c)
			}
		}
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			o := px[3*y*w:]
			for x := 0; x < w; x++ {
				c := lut[row[x]]
				o[3*x], o[3*x+1], o[3*x+2] = c[0], c[1], c[2]
			}
		}
	case *image.CMYK:
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			o := px[3*y*w:]
			for x := 0; x < w; x++ {
				nk := 255 - int(row[4*x+3])
				for c := 0; c < 3; c++ {
					o[3*x+c] = clip8(nk - mulDiv255(int(row[4*x+c]), nk))
				}
			}
		}
	case *jpeg.RGB8:
		copy(px, m.Pix)
	case *image.YCbCr:
		ycbcrToRGB(m, out)
	case *image.NYCbCrA:
		ycbcrToRGB(&m.YCbCr, out)
	default:
		for y := 0; y < h; y++ {
			o := px[3*y*w:]
			for x := 0; x < w; x++ {
				c := straightRGB(img.At(b.Min.X+x, b.Min.Y+y))
				o[3*x], o[3*x+1], o[3*x+2] = c[0], c[1], c[2]
			}
		}
	}
	return out
}

// straightRGB returns the non-premultiplied RGB of one colour.
func straightRGB(c color.Color) [3]uint8 {
	switch v := c.(type) {
	case color.NRGBA:
		return [3]uint8{v.R, v.G, v.B}
	case color.RGBA:
		if v.A == 255 || v.A == 0 {
			return [3]uint8{v.R, v.G, v.B}
		}
		a := uint32(v.A)
		return [3]uint8{uint8(min(255*uint32(v.R)/a, 255)), uint8(min(255*uint32(v.G)/a, 255)), uint8(min(255*uint32(v.B)/a, 255))}
	case color.Gray:
		return [3]uint8{v.Y, v.Y, v.Y}
	}
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return [3]uint8{n.R, n.G, n.B}
}

func clip8(v int) uint8 {
	if v <= 0 {
		return 0
	}
	if v >= 255 {
		return 255
	}
	return uint8(v)
}

// mulDiv255 is PIL's MULDIV255: (a*b+128 + ((a*b+128)>>8)) >> 8.
func mulDiv255(a, b int) int {
	t := a*b + 128
	return ((t >> 8) + t) >> 8
}

// libjpeg (jdcolor.c) fixed-point YCbCr->RGB tables, SCALEBITS = 16.
var crR, cbB, crG, cbG [256]int

func init() {
	fix := func(x float64) int { return int(x*65536 + 0.5) }
	const oneHalf = 1 << 15
	for i := 0; i < 256; i++ {
		x := i - 128
		crR[i] = (fix(1.40200)*x + oneHalf) >> 16
		cbB[i] = (fix(1.77200)*x + oneHalf) >> 16
		crG[i] = -fix(0.71414) * x
		cbG[i] = -fix(0.34414)*x + oneHalf
	}
}

func ycc(y, cb, cr uint8) (uint8, uint8, uint8) {
	yy := int(y)
	return clip8(yy + crR[cr]), clip8(yy + (cbG[cb]+crG[cr])>>16), clip8(yy + cbB[cb])
}

// ycbcrToRGB converts with libjpeg's tables; 4:2:0 and 4:2:2 chroma use libjpeg's fancy upsampling
// (jdsample.c h2v2_fancy_upsample / h2v1_fancy_upsample, used when the downsampled width is > 2),
// everything else nearest-neighbour chroma (libjpeg's plain replication).
func ycbcrToRGB(m *image.YCbCr, out *RGB) {
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	cw, ch := (w+1)/2, (h+1)/2
	fancy := b.Min == (image.Point{}) && cw > 2 &&
		(m.SubsampleRatio == image.YCbCrSubsampleRatio420 || m.SubsampleRatio == image.YCbCrSubsampleRatio422)
	if !fancy {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				yi := m.YOffset(b.Min.X+x, b.Min.Y+y)
				ci := m.COffset(b.Min.X+x, b.Min.Y+y)
				o := 3 * (y*w + x)
				out.Pix[o], out.Pix[o+1], out.Pix[o+2] = ycc(m.Y[yi], m.Cb[ci], m.Cr[ci])
			}
		}
		return
	}
	if m.SubsampleRatio == image.YCbCrSubsampleRatio422 {
		ch = h
	}
	cbRow := make([]uint8, 2*cw)
	crRow := make([]uint8, 2*cw)
	sum := make([]int, cw)
	upRow := func(plane []uint8, y int, dst []uint8) {
		if m.SubsampleRatio == image.YCbCrSubsampleRatio422 {
			in := plane[y*m.CStride : y*m.CStride+cw]
			for x := range dst {
				cx := x / 2
				switch {
				case x == 0:
					dst[x] = in[0]
				case x == 2*cw-1:
					dst[x] = in[cw-1]
				case x%2 == 0:
					dst[x] = uint8((3*int(in[cx]) + int(in[cx-1]) + 1) >> 2)
				default:
					dst[x] = uint8((3*int(in[cx]) + int(in[cx+1]) + 2) >> 2)
				}
			}
			return
		}
		r0 := y / 2
		r1 := r0 - 1
		if y%2 == 1 {
			r1 = r0 + 1
		}
		r1 = max(0, min(r1, ch-1))
		in0 := plane[r0*m.CStride : r0*m.CStride+cw]
		in1 := plane[r1*m.CStride : r1*m.CStride+cw]
		for i := range sum {
			sum[i] = 3*int(in0[i]) + int(in1[i])
		}
		for x := range dst {
			cx := x / 2
			switch {
			case x == 0:
				dst[x] = uint8((4*sum[0] + 8) >> 4)
			case x == 2*cw-1:
				dst[x] = uint8((4*sum[cw-1] + 7) >> 4)
			case x%2 == 0:
				dst[x] = uint8((3*sum[cx] + sum[cx-1] + 8) >> 4)
			default:
				dst[x] = uint8((3*sum[cx] + sum[cx+1] + 7) >> 4)
			}
		}
	}
	for y := 0; y < h; y++ {
		upRow(m.Cb, y, cbRow)
		upRow(m.Cr, y, crRow)
		yrow := m.Y[y*m.YStride:]
		o := out.Pix[3*y*w:]
		for x := 0; x < w; x++ {
			o[3*x], o[3*x+1], o[3*x+2] = ycc(yrow[x], cbRow[x], crRow[x])
		}
	}
}
