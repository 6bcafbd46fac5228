package data

import (
	"encoding/binary"
	"encoding/json"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fixtures come from testdata/gen_fixtures.py (PIL 9.4); see its docstring.
type fixtureRGB struct {
	Image    string `json:"image"`
	PILMode  string `json:"pil_mode"`
	W        int    `json:"w"`
	H        int    `json:"h"`
	Expected string `json:"expected"`
	Bg       []int  `json:"bg"`
}

type fixturePre struct {
	Image    string     `json:"image"`
	Size     int        `json:"size"`
	Mean     [3]float32 `json:"mean"`
	Std      [3]float32 `json:"std"`
	Pad      bool       `json:"pad"`
	Expected string     `json:"expected"`
}

type manifest struct {
	PILVersion string       `json:"pil_version"`
	Convert    []fixtureRGB `json:"convert"`
	Resize     []fixtureRGB `json:"resize"`
	Pad        []fixtureRGB `json:"pad"`
	Preprocess []fixturePre `json:"preprocess"`
}

func loadManifest(t *testing.T) manifest {
	t.Helper()
	raw, err := os.ReadFile("testdata/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Convert) == 0 || len(m.Resize) == 0 || len(m.Pad) == 0 || len(m.Preprocess) == 0 {
		t.Fatalf("incomplete manifest: %+v", m)
	}
	return m
}

func readRGB(t *testing.T, f fixtureRGB) *RGB {
	t.Helper()
	pix, err := os.ReadFile(filepath.Join("testdata", f.Expected))
	if err != nil {
		t.Fatal(err)
	}
	if len(pix) != 3*f.W*f.H {
		t.Fatalf("%s: %d bytes, want %d", f.Expected, len(pix), 3*f.W*f.H)
	}
	return &RGB{W: f.W, H: f.H, Pix: pix}
}

// pilRGB returns PIL's convert("RGB") of a fixture image (the reference input of the resize/pad tests).
func pilRGB(t *testing.T, m manifest, img string) *RGB {
	t.Helper()
	for _, c := range m.Convert {
		if c.Image == img {
			return readRGB(t, c)
		}
	}
	t.Fatalf("no convert fixture for %s", img)
	return nil
}

// compare returns the maximum absolute difference and the number of equal bytes.
func compare(t *testing.T, name string, got, want *RGB) (maxDiff, exact int) {
	t.Helper()
	if got.W != want.W || got.H != want.H || len(got.Pix) != len(want.Pix) {
		t.Fatalf("%s: size %dx%d (%d bytes), want %dx%d", name, got.W, got.H, len(got.Pix), want.W, want.H)
	}
	for i := range got.Pix {
		d := int(got.Pix[i]) - int(want.Pix[i])
		if d < 0 {
			d = -d
		}
		maxDiff = max(maxDiff, d)
		if d == 0 {
			exact++
		}
	}
	return
}

func TestConvertRGBAgainstPIL(t *testing.T) {
	m := loadManifest(t)
	for _, c := range m.Convert {
		t.Run(filepath.Base(c.Image), func(t *testing.T) {
			img, err := LoadImage(filepath.Join("testdata", c.Image))
			if err != nil {
				t.Fatal(err)
			}
			got := ToRGB(img)
			want := readRGB(t, c)
			maxDiff, exact := compare(t, c.Image, got, want)
			frac := float64(exact) / float64(len(want.Pix))
			t.Logf("%s (PIL mode %s, Go %T): max |diff| %d, exact %.2f%%", c.Image, c.PILMode, img, maxDiff, 100*frac)
			// JPEG included: data/jpeg reproduces libjpeg-turbo exactly.
			if maxDiff != 0 {
				t.Errorf("convert(\"RGB\") not exact: max |diff| %d, exact %.2f%%", maxDiff, 100*frac)
			}
		})
	}
}

func TestResizeBicubicAgainstPIL(t *testing.T) {
	m := loadManifest(t)
	total, totalExact := 0, 0
	for _, r := range m.Resize {
		src := pilRGB(t, m, r.Image)
		got := ResizeBicubic(src, r.W, r.H)
		want := readRGB(t, r)
		maxDiff, exact := compare(t, r.Expected, got, want)
		total += len(want.Pix)
		totalExact += exact
		t.Logf("%s %dx%d -> %dx%d: max |diff| %d, exact %d/%d", r.Image, src.W, src.H, r.W, r.H, maxDiff, exact, len(want.Pix))
		if maxDiff > 1 {
			t.Errorf("%s: max |diff| %d > 1", r.Expected, maxDiff)
		}
	}
	t.Logf("resize: %.4f%% of values bit-exact with PIL", 100*float64(totalExact)/float64(total))
	// The port is meant to be bit-exact; a regression to "within 1" should be noticed.
	if totalExact != total {
		t.Errorf("resize: %d of %d values differ from PIL", total-totalExact, total)
	}
}

func TestResizeSameSizeIsCopy(t *testing.T) {
	src := NewRGB(3, 2, [3]uint8{1, 2, 3})
	src.Pix[4] = 200
	out := ResizeBicubic(src, 3, 2)
	if &out.Pix[0] == &src.Pix[0] {
		t.Fatal("same-size resize must not alias its input")
	}
	if string(out.Pix) != string(src.Pix) {
		t.Fatalf("same-size resize changed pixels: %v vs %v", out.Pix, src.Pix)
	}
}

func TestResizeConstantImageStaysConstant(t *testing.T) {
	// Normalised weights: a flat image stays flat through up- and down-scaling (also at the borders).
	src := NewRGB(17, 5, [3]uint8{0, 128, 255})
	for _, sz := range [][2]int{{3, 40}, {40, 3}, {17, 1}, {1, 1}} {
		out := ResizeBicubic(src, sz[0], sz[1])
		for i := 0; i < len(out.Pix); i += 3 {
			if out.Pix[i] != 0 || out.Pix[i+1] != 128 || out.Pix[i+2] != 255 {
				t.Fatalf("%v: pixel %d = %v", sz, i/3, out.Pix[i:i+3])
			}
		}
	}
}

func TestExpandToSquareAgainstPIL(t *testing.T) {
	m := loadManifest(t)
	for _, p := range m.Pad {
		src := pilRGB(t, m, p.Image)
		bg := [3]uint8{uint8(p.Bg[0]), uint8(p.Bg[1]), uint8(p.Bg[2])}
		got := ExpandToSquare(src, bg)
		if maxDiff, _ := compare(t, p.Expected, got, readRGB(t, p)); maxDiff != 0 {
			t.Errorf("%s: max |diff| %d", p.Expected, maxDiff)
		}
	}
	// PadColor reproduces int(mean*255) for the means used above.
	if got := DefaultPreprocessConfig(1).PadColor(); got != [3]uint8{127, 127, 127} {
		t.Errorf("SigLIP pad colour %v", got)
	}
	clip := PreprocessConfig{Mean: [3]float32{0.48145466, 0.4578275, 0.40821073}}
	if got := clip.PadColor(); got != [3]uint8{122, 116, 104} {
		t.Errorf("CLIP pad colour %v", got)
	}
}

func TestPreprocessAgainstHF(t *testing.T) {
	m := loadManifest(t)
	for _, p := range m.Preprocess {
		raw, err := os.ReadFile(filepath.Join("testdata", p.Expected))
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float32, len(raw)/4)
		for i := range want {
			want[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		img, err := LoadImage(filepath.Join("testdata", p.Image))
		if err != nil {
			t.Fatal(err)
		}
		cfg := PreprocessConfig{Size: p.Size, Mean: p.Mean, Std: p.Std, Pad: p.Pad}
		got, err := Preprocess(img, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3*p.Size*p.Size || len(got) != len(want) {
			t.Fatalf("%s: len %d, want %d", p.Expected, len(got), len(want))
		}
		n := p.Size * p.Size
		maxDiff, exact := 0.0, 0
		for i := range got {
			d := math.Abs(float64(got[i] - want[i]))
			if tol := 2.0 / 255 / float64(p.Std[i/n]); d > tol {
				t.Fatalf("%s: value %d = %v, want %v (tol %v)", p.Expected, i, got[i], want[i], tol)
			}
			maxDiff = max(maxDiff, d)
			if got[i] == want[i] {
				exact++
			}
		}
		t.Logf("%s: max |diff| %g, bit-exact float32 %d/%d", p.Expected, maxDiff, exact, len(got))
		if exact != len(got) {
			t.Errorf("%s: %d values not bit-exact", p.Expected, len(got)-exact)
		}
	}
}

func TestToRGBStraightAlpha(t *testing.T) {
	// NRGBA with alpha 0 keeps its colour (PIL drops alpha, no compositing).
	n := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	n.SetNRGBA(0, 0, color.NRGBA{200, 100, 50, 0})
	n.SetNRGBA(1, 0, color.NRGBA{10, 20, 30, 77})
	got := ToRGB(n)
	if got.At(0, 0) != [3]uint8{200, 100, 50} || got.At(1, 0) != [3]uint8{10, 20, 30} {
		t.Errorf("NRGBA: %v", got.Pix)
	}
	// NRGBA64: high byte.
	n64 := image.NewNRGBA64(image.Rect(0, 0, 1, 1))
	n64.SetNRGBA64(0, 0, color.NRGBA64{0x12ff, 0xab00, 0xffff, 0})
	if got := ToRGB(n64).At(0, 0); got != [3]uint8{0x12, 0xab, 0xff} {
		t.Errorf("NRGBA64: %v", got)
	}
	// Premultiplied RGBA with partial alpha: PIL's RGBa->RGB, 255*c/a truncated and clipped.
	r := image.NewRGBA(image.Rect(0, 0, 3, 1))
	r.SetRGBA(0, 0, color.RGBA{50, 100, 128, 128}) // 99, 199, 255
	r.SetRGBA(1, 0, color.RGBA{5, 6, 7, 0})        // alpha 0: stored values
	r.SetRGBA(2, 0, color.RGBA{5, 6, 7, 255})
	got = ToRGB(r)
	if want := []uint8{99, 199, 255, 5, 6, 7, 5, 6, 7}; string(got.Pix) != string(want) {
		t.Errorf("RGBA: %v want %v", got.Pix, want)
	}
	// Paletted with a transparent NRGBA entry and an index past the palette.
	p := image.NewPaletted(image.Rect(0, 0, 3, 1), color.Palette{color.NRGBA{1, 2, 3, 0}, color.RGBA{9, 8, 7, 255}})
	p.Pix = []uint8{0, 1, 5}
	if got := ToRGB(p); string(got.Pix) != string([]uint8{1, 2, 3, 9, 8, 7, 0, 0, 0}) {
		t.Errorf("Paletted: %v", got.Pix)
	}
	// Gray16 clips like PIL mode "I".
	g := image.NewGray16(image.Rect(0, 0, 3, 1))
	g.SetGray16(0, 0, color.Gray16{254})
	g.SetGray16(1, 0, color.Gray16{256})
	g.SetGray16(2, 0, color.Gray16{0xffff})
	if got := ToRGB(g); string(got.Pix) != string([]uint8{254, 254, 254, 255, 255, 255, 255, 255, 255}) {
		t.Errorf("Gray16: %v", got.Pix)
	}
	// Sub-images honour their bounds.
	sub := n.SubImage(image.Rect(1, 0, 2, 1))
	if got := ToRGB(sub); got.W != 1 || got.At(0, 0) != [3]uint8{10, 20, 30} {
		t.Errorf("sub-image: %+v", got)
	}
}

func TestLoadImageErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.png")
	if _, err := LoadImage(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.png")
	os.WriteFile(bad, []byte("\x89PNG\r\n\x1a\nthis is not a png"), 0o644)
	if _, err := LoadImage(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("corrupt file: %v", err)
	}
	// A truncated real image.
	raw, err := os.ReadFile("testdata/images/rgb_37x23.png")
	if err != nil {
		t.Fatal(err)
	}
	trunc := filepath.Join(dir, "trunc.png")
	os.WriteFile(trunc, raw[:len(raw)/2], 0o644)
	if _, err := LoadImage(trunc); err == nil || !strings.Contains(err.Error(), trunc) {
		t.Errorf("truncated file: %v", err)
	}
}

func TestLoadPreprocessConfig(t *testing.T) {
	write := func(dir, name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing present: SigLIP defaults with the tower's size, no pad.
	dir := t.TempDir()
	cfg, err := LoadPreprocessConfig(dir, 384)
	if err != nil || cfg != DefaultPreprocessConfig(384) {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
	if _, err := LoadPreprocessConfig(dir, 0); err == nil {
		t.Error("no size anywhere should fail")
	}
	// SigLIP processor + pad.
	write(dir, "preprocessor_config.json", `{"image_mean":[0.5,0.5,0.5],"image_std":[0.5,0.5,0.5],"resample":3,
		"rescale_factor":0.00392156862745098,"size":{"height":384,"width":384},"do_normalize":true}`)
	write(dir, "config.json", `{"model_type":"tinyllava","image_aspect_ratio":"pad"}`)
	cfg, err = LoadPreprocessConfig(dir, 0)
	if err != nil || cfg.Size != 384 || !cfg.Pad || cfg.Mean != [3]float32{0.5, 0.5, 0.5} {
		t.Fatalf("siglip+pad: %+v %v", cfg, err)
	}
	// int size, CLIP mean/std, square aspect.
	write(dir, "preprocessor_config.json", `{"image_mean":[0.48145466,0.4578275,0.40821073],"image_std":[0.26862954,0.26130258,0.27577711],"size":336}`)
	write(dir, "config.json", `{"image_aspect_ratio":"square"}`)
	cfg, err = LoadPreprocessConfig(dir, 336)
	if err != nil || cfg.Size != 336 || cfg.Pad || cfg.Std[2] != float32(0.27577711) || cfg.Mean[0] != float32(0.48145466) {
		t.Fatalf("clip: %+v %v", cfg, err)
	}
	for _, bad := range []struct{ pp, cfg, want string }{
		{`{"size":336}`, `{}`, "disagrees"},
		{`{"size":{"height":384,"width":200}}`, `{}`, "square"},
		{`{"size":384,"resample":2}`, `{}`, "resample"},
		{`{"size":384,"image_mean":[1,2]}`, `{}`, "image_mean"},
		{`{"size":384`, `{}`, "preprocessor_config.json"},
		{`{"size":384}`, `{"image_aspect_ratio":"anyres"}`, "anyres"},
		{`{"size":384}`, `{"image_aspect_ratio":`, "config.json"},
		{`{"size":384,"image_std":[0,0.5,0.5]}`, `{}`, "std"},
	} {
		write(dir, "preprocessor_config.json", bad.pp)
		write(dir, "config.json", bad.cfg)
		if _, err := LoadPreprocessConfig(dir, 384); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s / %s: error %v, want mention of %q", bad.pp, bad.cfg, err, bad.want)
		}
	}
}
