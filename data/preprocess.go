package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"os"
	"path/filepath"
)

// PreprocessConfig describes the image pipeline of a TinyLLaVA vision tower (SigLIP by default).
type PreprocessConfig struct {
	Size int        // output height = width
	Mean [3]float32 // per-channel mean after rescaling to [0, 1]
	Std  [3]float32 // per-channel std
	Pad  bool       // image_aspect_ratio == "pad": ExpandToSquare with the mean colour first
}

// DefaultPreprocessConfig is SigLIP's processor: mean = std = 0.5, no padding.
func DefaultPreprocessConfig(size int) PreprocessConfig {
	return PreprocessConfig{Size: size, Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.5, 0.5, 0.5}}
}

// PadColor is the background of the "pad" option: int(mean * 255) per channel, as TinyLLaVA's
// ImagePreprocess computes it (truncation, e.g. 0.5 -> 127).
func (c PreprocessConfig) PadColor() [3]uint8 {
	var bg [3]uint8
	for i, m := range c.Mean {
		bg[i] = clip8(int(float64(m) * 255))
	}
	return bg
}

// ExpandToSquare pastes img centred on a square canvas of colour bg, like TinyLLaVA's expand2square:
// offset (max-min)/2 (integer division) along the short side; square images are returned as is.
func ExpandToSquare(img *RGB, bg [3]uint8) *RGB {
	if img.W == img.H {
		return img
	}
	n := max(img.W, img.H)
	out := NewRGB(n, n, bg)
	ox, oy := 0, 0
	if img.W > img.H {
		oy = (img.W - img.H) / 2
	} else {
		ox = (img.H - img.W) / 2
	}
	for y := 0; y < img.H; y++ {
		copy(out.Pix[3*((y+oy)*n+ox):], img.Pix[3*y*img.W:3*(y+1)*img.W])
	}
	return out
}

// Preprocess runs the full pipeline on a decoded image and returns a CHW float32 tensor of
// 3*Size*Size values: ToRGB, optional ExpandToSquare(PadColor), ResizeBicubic(Size, Size), then per
// value x = float32(float64(u8) * (1/255)) and (x - mean) / std in float32 (the Hugging Face
// rescale/normalize arithmetic).
func Preprocess(img image.Image, cfg PreprocessConfig) ([]float32, error) {
	if img == nil {
		return nil, errors.New("data: Preprocess: nil image")
	}
	return PreprocessRGB(ToRGB(img), cfg)
}

// PreprocessRGB is Preprocess for an image already converted with ToRGB.
func PreprocessRGB(rgb *RGB, cfg PreprocessConfig) ([]float32, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if rgb.W <= 0 || rgb.H <= 0 {
		return nil, fmt.Errorf("data: Preprocess: empty image %dx%d", rgb.W, rgb.H)
	}
	if cfg.Pad {
		rgb = ExpandToSquare(rgb, cfg.PadColor())
	}
	if rgb.W != cfg.Size || rgb.H != cfg.Size {
		rgb = ResizeBicubic(rgb, cfg.Size, cfg.Size)
	}
	n := cfg.Size * cfg.Size
	out := make([]float32, 3*n)
	const scale = 1.0 / 255.0
	for c := 0; c < 3; c++ {
		mean, std := cfg.Mean[c], cfg.Std[c]
		dst := out[c*n : (c+1)*n]
		for i := range dst {
			x := float32(float64(rgb.Pix[3*i+c]) * scale)
			dst[i] = float32(x-mean) / std
		}
	}
	return out, nil
}

func (c PreprocessConfig) validate() error {
	if c.Size <= 0 {
		return fmt.Errorf("data: preprocess config: size must be positive, got %d", c.Size)
	}
	for i, s := range c.Std {
		if s == 0 {
			return fmt.Errorf("data: preprocess config: std[%d] is zero", i)
		}
	}
	return nil
}

// LoadPreprocessConfig builds the config for a TinyLLaVA checkpoint directory.
//   - preprocessor_config.json, when present: image_mean, image_std (default 0.5), size as an int or
//     {"height", "width"} (must be square); crop_size is used when size is absent.
//     A resample other than 3 (bicubic), do_center_crop, or do_rescale/do_normalize false are rejected
//     rather than silently mishandled.
//   - config.json, when present: image_aspect_ratio "pad" sets Pad; "anyres" is rejected; anything
//     else (e.g. "square") means no padding. Its absence means no padding.
//
// imageSize is the vision tower's image_size (0 if unknown); it is used when the processor gives no
// size, and must agree with it otherwise.
func LoadPreprocessConfig(modelDir string, imageSize int) (PreprocessConfig, error) {
	cfg := DefaultPreprocessConfig(imageSize)
	ppPath := filepath.Join(modelDir, "preprocessor_config.json")
	raw, err := os.ReadFile(ppPath)
	switch {
	case err == nil:
		if err := parsePreprocessorConfig(raw, &cfg, imageSize); err != nil {
			return PreprocessConfig{}, fmt.Errorf("data: %s: %w", ppPath, err)
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return PreprocessConfig{}, fmt.Errorf("data: reading %s: %w", ppPath, err)
	}
	cPath := filepath.Join(modelDir, "config.json")
	raw, err = os.ReadFile(cPath)
	switch {
	case err == nil:
		var c struct {
			ImageAspectRatio *string `json:"image_aspect_ratio"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return PreprocessConfig{}, fmt.Errorf("data: parsing %s: %w", cPath, err)
		}
		if c.ImageAspectRatio != nil {
			switch *c.ImageAspectRatio {
			case "pad":
				cfg.Pad = true
			case "anyres":
				return PreprocessConfig{}, fmt.Errorf("data: %s: image_aspect_ratio %q is not supported", cPath, *c.ImageAspectRatio)
			}
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return PreprocessConfig{}, fmt.Errorf("data: reading %s: %w", cPath, err)
	}
	if cfg.Size <= 0 {
		return PreprocessConfig{}, fmt.Errorf("data: %s: no image size (no size in preprocessor_config.json and imageSize=%d)", modelDir, imageSize)
	}
	return cfg, cfg.validate()
}

func parsePreprocessorConfig(raw []byte, cfg *PreprocessConfig, imageSize int) error {
	var p struct {
		ImageMean    []float64       `json:"image_mean"`
		ImageStd     []float64       `json:"image_std"`
		Size         json.RawMessage `json:"size"`
		CropSize     json.RawMessage `json:"crop_size"`
		Resample     *int            `json:"resample"`
		DoResize     *bool           `json:"do_resize"`
		DoRescale    *bool           `json:"do_rescale"`
		RescaleF     *float64        `json:"rescale_factor"`
		DoNormalize  *bool           `json:"do_normalize"`
		DoCenterCrop *bool           `json:"do_center_crop"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("parsing: %w", err)
	}
	three := func(name string, v []float64, dst *[3]float32) error {
		switch len(v) {
		case 0:
			return nil
		case 1:
			*dst = [3]float32{float32(v[0]), float32(v[0]), float32(v[0])}
		case 3:
			*dst = [3]float32{float32(v[0]), float32(v[1]), float32(v[2])}
		default:
			return fmt.Errorf("%s has %d values, want 3", name, len(v))
		}
		return nil
	}
	if err := three("image_mean", p.ImageMean, &cfg.Mean); err != nil {
		return err
	}
	if err := three("image_std", p.ImageStd, &cfg.Std); err != nil {
		return err
	}
	if p.Resample != nil && *p.Resample != 3 {
		return fmt.Errorf("resample %d is not supported (only 3 = bicubic)", *p.Resample)
	}
	if p.DoCenterCrop != nil && *p.DoCenterCrop {
		return errors.New("do_center_crop is not supported")
	}
	if p.DoResize != nil && !*p.DoResize {
		return errors.New("do_resize false is not supported")
	}
	if p.DoRescale != nil && !*p.DoRescale {
		return errors.New("do_rescale false is not supported")
	}
	if p.RescaleF != nil && *p.RescaleF != 1.0/255.0 {
		return fmt.Errorf("rescale_factor %v is not supported (only 1/255)", *p.RescaleF)
	}
	if p.DoNormalize != nil && !*p.DoNormalize {
		return errors.New("do_normalize false is not supported")
	}
	size, err := parseSize(p.Size)
	if err != nil {
		return fmt.Errorf("size: %w", err)
	}
	if size == 0 {
		if size, err = parseSize(p.CropSize); err != nil {
			return fmt.Errorf("crop_size: %w", err)
		}
	}
	if size != 0 {
		if imageSize > 0 && size != imageSize {
			return fmt.Errorf("processor size %d disagrees with the vision tower image_size %d", size, imageSize)
		}
		cfg.Size = size
	}
	return nil
}

// parseSize accepts 384 or {"height": 384, "width": 384}; 0 when absent.
func parseSize(raw json.RawMessage) (int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var n int
	if err := json.Unmarshal(raw, &n); err == nil {
		return n, nil
	}
	var obj map[string]int
	if err := json.Unmarshal(raw, &obj); err != nil {
		return 0, fmt.Errorf("want an int or {height, width}, got %s", raw)
	}
	h, hok := obj["height"]
	w, wok := obj["width"]
	if hok || wok {
		if !hok || !wok || h != w {
			return 0, fmt.Errorf("only square sizes are supported, got %s", raw)
		}
		return h, nil
	}
	if _, ok := obj["shortest_edge"]; ok {
		return 0, fmt.Errorf("shortest_edge (aspect-preserving, CLIP-style) sizes are not supported, got %s", raw)
	}
	return 0, fmt.Errorf("unrecognised size %s", raw)
}
