package world

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"sync"
)

// Rendering uses integer arithmetic only (4x4 supersampling for shape
// edges), so pixels are identical on every platform.

const (
	ss    = 4      // samples per pixel per axis
	unit  = 2 * ss // sub-units per pixel: sample i of pixel p sits at p*unit + 2i + 1
	noise = 5      // background texture amplitude (+-, in 8-bit levels)
)

// inside reports whether the sample point (X, Y), in sub-units, lies in the
// shape inscribed in the square box [X0, X0+D) x [Y0, Y0+D).
func inside(shape string, X, Y, X0, Y0, D int) bool {
	if X < X0 || Y < Y0 || X >= X0+D || Y >= Y0+D {
		return false
	}
	dx, dy := 2*(X-X0)-D, 2*(Y-Y0)-D // twice the offset from the centre
	switch shape {
	case "circle":
		return dx*dx+dy*dy <= D*D
	case "ring":
		r2 := dx*dx + dy*dy
		return r2 <= D*D && 4*r2 >= D*D
	case "square":
		return true
	case "triangle": // apex at the top centre, base along the bottom edge
		return abs(dx) <= Y-Y0
	case "cross": // plus sign, arms one third of the box wide
		return 3*abs(dx) <= D || 3*abs(dy) <= D
	}
	return false
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// RenderScene draws a scene: a lightly textured background, the objects with
// anti-aliased edges, and the character as crisp scaled bitmap pixels.
func RenderScene(s *Scene) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, s.Size, s.Size))
	rng := rand.New(rand.NewPCG(s.NoiseSeed, 0x4e4f495345000002))
	for y := 0; y < s.Size; y++ {
		for x := 0; x < s.Size; x++ {
			d := rng.IntN(2*noise+1) - noise
			var c [3]uint8
			for i := range c {
				c[i] = uint8(min(255, max(0, int(s.Background[i])+d)))
			}
			img.SetRGBA(x, y, color.RGBA{c[0], c[1], c[2], 255})
		}
	}
	for _, o := range s.Objects {
		D := (o.BBox[2] - o.BBox[0]) * unit
		X0, Y0 := o.BBox[0]*unit, o.BBox[1]*unit
		for y := o.BBox[1]; y < o.BBox[3]; y++ {
			for x := o.BBox[0]; x < o.BBox[2]; x++ {
				k := 0
				for j := 0; j < ss; j++ {
					for i := 0; i < ss; i++ {
						if inside(o.Shape, x*unit+2*i+1, y*unit+2*j+1, X0, Y0, D) {
							k++
						}
					}
				}
				if k == 0 {
					continue
				}
				p := img.RGBAAt(x, y)
				bg := [3]uint8{p.R, p.G, p.B}
				var c [3]uint8
				for i := range c {
					c[i] = uint8((int(bg[i])*(ss*ss-k) + int(o.RGB[i])*k + ss*ss/2) / (ss * ss))
				}
				img.SetRGBA(x, y, color.RGBA{c[0], c[1], c[2], 255})
			}
		}
	}
	if t := s.Text; t != nil {
		g := Glyph(t.Char, t.Scale)
		for gy, row := range g {
			for gx, ink := range row {
				if ink {
					img.SetRGBA(t.BBox[0]+gx, t.BBox[1]+gy, color.RGBA{t.RGB[0], t.RGB[1], t.RGB[2], 255})
				}
			}
		}
	}
	return img
}

// pngPool reuses the encoder's compression state across images.
type pngPool struct{ p sync.Pool }

func (p *pngPool) Get() *png.EncoderBuffer {
	b, _ := p.p.Get().(*png.EncoderBuffer)
	return b
}
func (p *pngPool) Put(b *png.EncoderBuffer) { p.p.Put(b) }

var pngEncoder = &png.Encoder{BufferPool: &pngPool{}}

// EncodePNG renders a scene and encodes it as an 8-bit RGB PNG.
func EncodePNG(s *Scene) ([]byte, error) {
	var buf bytes.Buffer
	if err := pngEncoder.Encode(&buf, RenderScene(s)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
