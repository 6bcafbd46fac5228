package jpeg

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"image"
	stdjpeg "image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fixtures come from testdata/gen.py: NAME.jpg and PIL's convert("RGB") bytes as NAME.rgb (or their
// SHA-256 for the large ones).
type fixture struct {
	Name    string `json:"name"`
	W       int    `json:"w"`
	H       int    `json:"h"`
	PILMode string `json:"pil_mode"`
	Note    string `json:"note"`
	SHA256  string `json:"sha256"`
}

func loadFixtures(t testing.TB) []fixture {
	t.Helper()
	raw, err := os.ReadFile("testdata/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		PIL   string    `json:"pil_version"`
		Turbo string    `json:"libjpeg_turbo"`
		Cases []fixture `json:"cases"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Cases) < 10 {
		t.Fatalf("only %d cases in the manifest", len(m.Cases))
	}
	return m.Cases
}

func TestAgainstPIL(t *testing.T) {
	for _, f := range loadFixtures(t) {
		t.Run(f.Name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", f.Name+".jpg"))
			if err != nil {
				t.Fatal(err)
			}
			img, err := Decode(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if img.W != f.W || img.H != f.H {
				t.Fatalf("size %dx%d, want %dx%d", img.W, img.H, f.W, f.H)
			}
			// For comparison: how far Go's image/jpeg is from PIL on the same file.
			std := "-"
			if s, err := stdjpeg.Decode(bytes.NewReader(raw)); err == nil {
				std = stdDiff(s, img)
			}
			if f.SHA256 != "" {
				sum := sha256.Sum256(img.Pix)
				if got := hex.EncodeToString(sum[:]); got != f.SHA256 {
					t.Fatalf("%s (%s): SHA-256 of the RGB bytes %s, PIL's %s", f.Name, f.Note, got, f.SHA256)
				}
				t.Logf("%s (%s, PIL %s): exact (hash); image/jpeg vs this: %s", f.Name, f.Note, f.PILMode, std)
				return
			}
			want, err := os.ReadFile(filepath.Join("testdata", f.Name+".rgb"))
			if err != nil {
				t.Fatal(err)
			}
			n, maxd := diffCount(img.Pix, want)
			t.Logf("%s (%s, PIL %s): %d of %d values differ from PIL (max %d); image/jpeg vs this: %s",
				f.Name, f.Note, f.PILMode, n, len(want), maxd, std)
			if n != 0 {
				t.Errorf("%d values differ from PIL (max |diff| %d)", n, maxd)
			}
		})
	}
}

// stdDiff describes how many RGB values of Go's decode (converted naively) differ from ours.
func stdDiff(s image.Image, ours *RGB8) string {
	b := s.Bounds()
	n, maxd := 0, 0
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			r, g, bb, _ := s.At(b.Min.X+x, b.Min.Y+y).RGBA()
			i := 3 * (y*ours.W + x)
			for c, v := range [3]uint32{r >> 8, g >> 8, bb >> 8} {
				d := int(v) - int(ours.Pix[i+c])
				if d < 0 {
					d = -d
				}
				if d != 0 {
					n++
					maxd = max(maxd, d)
				}
			}
		}
	}
	return fmtDiff(n, 3*b.Dx()*b.Dy(), maxd)
}

func fmtDiff(n, total, maxd int) string {
	return string(appendInt(nil, n)) + "/" + string(appendInt(nil, total)) + " differ (max " + string(appendInt(nil, maxd)) + ")"
}

func appendInt(b []byte, v int) []byte {
	if v >= 10 {
		b = appendInt(b, v/10)
	}
	return append(b, byte('0'+v%10))
}

func TestImageInterface(t *testing.T) {
	raw, err := os.ReadFile("testdata/q75_444_40x30.jpg")
	if err != nil {
		t.Fatal(err)
	}
	img, err := DecodeBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	var _ image.Image = img
	if img.Bounds() != image.Rect(0, 0, 40, 30) {
		t.Fatalf("bounds %v", img.Bounds())
	}
	r, g, b, a := img.At(3, 2).RGBA()
	i := 3 * (2*40 + 3)
	if r>>8 != uint32(img.Pix[i]) || g>>8 != uint32(img.Pix[i+1]) || b>>8 != uint32(img.Pix[i+2]) || a != 0xffff {
		t.Fatalf("At(3, 2) = %v %v %v %v", r, g, b, a)
	}
	w, h, nc, err := Config(raw)
	if err != nil || w != 40 || h != 30 || nc != 3 {
		t.Fatalf("Config = %d %d %d %v", w, h, nc, err)
	}
}

// Every proper prefix of a valid file must fail with an error (and no panic); cutting inside the
// entropy-coded data must say the data is truncated or ends early.
func TestTruncated(t *testing.T) {
	for _, name := range []string{"q75_420_17x9", "q75_420_prog_48x40", "enc_420_rst2_29x19"} {
		raw, err := os.ReadFile(filepath.Join("testdata", name+".jpg"))
		if err != nil {
			t.Fatal(err)
		}
		// A sequential file without EOI is still complete; a progressive one may miss scans.
		_, err = DecodeBytes(raw[:len(raw)-2])
		if prog := strings.Contains(name, "prog"); prog != (err != nil) {
			t.Errorf("%s without EOI: error %v", name, err)
		}
		for n := 0; n < len(raw)-2; n++ {
			_, err := DecodeBytes(raw[:n])
			if err == nil {
				t.Errorf("%s cut at %d of %d: no error", name, n, len(raw))
				continue
			}
			var fe FormatError
			var ue UnsupportedError
			if !errors.Is(err, ErrTruncated) && !errors.As(err, &fe) && !errors.As(err, &ue) {
				t.Errorf("%s cut at %d: unexpected error type %T: %v", name, n, err, err)
			}
		}
	}
}

func TestErrors(t *testing.T) {
	raw, err := os.ReadFile("testdata/q75_444_40x30.jpg")
	if err != nil {
		t.Fatal(err)
	}
	// Find the SOF0 marker to patch it.
	sof := bytes.Index(raw, []byte{0xFF, 0xC0})
	if sof < 0 {
		t.Fatal("no SOF0")
	}
	patch := func(off int, v byte) []byte {
		b := bytes.Clone(raw)
		b[off] = v
		return b
	}
	patch2 := func(o1 int, v1 byte, o2 int, v2 byte) []byte {
		b := patch(o1, v1)
		b[o2] = v2
		return b
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "missing SOI"},
		{"png", []byte("\x89PNG\r\n\x1a\n"), "missing SOI"},
		{"12-bit", patch(sof+4, 12), "12-bit samples"},
		{"arithmetic", patch(sof+1, 0xC9), "arithmetic coding"},
		{"lossless", patch(sof+1, 0xC3), "lossless"},
		{"2 components", patch(sof+9, 2), "2 components"},
		{"height 0", append(append(bytes.Clone(raw[:sof+5]), 0, 0), raw[sof+7:]...), "DNL"},
		{"sampling 0", patch(sof+11, 0x01), "sampling factors"},
		{"fractional sampling", patch2(sof+11, 0x33, sof+14, 0x22), "fractional sampling"},
		{"too many blocks per MCU", patch(sof+11, 0x44), "too large for an interleaved scan"},
		{"only SOI", []byte{0xFF, 0xD8}, "no frame header"},
	}
	for _, c := range cases {
		_, err := DecodeBytes(c.data)
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
			t.Errorf("%s: error %v, want it to mention %q", c.name, err, c.want)
		}
	}
	// Corrupt the entropy-coded data: must not panic; either an error or an image.
	sos := bytes.Index(raw, []byte{0xFF, 0xDA})
	for i := sos + 14; i < len(raw)-2; i += 7 {
		b := bytes.Clone(raw)
		b[i] ^= 0x5A
		DecodeBytes(b)
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range []string{"q75_420_17x9", "q75_420_prog_48x40", "enc_420_rst2_29x19", "enc_prog_rst3_41x27",
		"q90_cmyk_16x12", "enc_ycck_420_22x18", "q70_gray_prog_21x11", "enc_440_rst1_26x22", "prog_cut2_64x56"} {
		raw, err := os.ReadFile(filepath.Join("testdata", c+".jpg"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	old := maxPixels
	maxPixels = 1 << 20
	defer func() { maxPixels = old }()
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := DecodeBytes(b)
		if err == nil && len(img.Pix) != 3*img.W*img.H {
			t.Fatalf("%dx%d image with %d bytes", img.W, img.H, len(img.Pix))
		}
	})
}

func benchFile(b *testing.B, name string, std bool) {
	raw, err := os.ReadFile(filepath.Join("testdata", name+".jpg"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if std {
			if _, err := stdjpeg.Decode(bytes.NewReader(raw)); err != nil {
				b.Fatal(err)
			}
		} else if _, err := DecodeBytes(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode640x480(b *testing.B)           { benchFile(b, "photo_640x480", false) }
func BenchmarkStdlibDecode640x480(b *testing.B)     { benchFile(b, "photo_640x480", true) }
func BenchmarkDecodeProg640x480(b *testing.B)       { benchFile(b, "photo_prog_640x480", false) }
func BenchmarkStdlibDecodeProg640x480(b *testing.B) { benchFile(b, "photo_prog_640x480", true) }
