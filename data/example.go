package data

import (
	"fmt"
	"path/filepath"
)

// DefaultModelMaxLength is TinyLLaVA's default tokenizer_model_max_length (2048), used by LoadExample
// for make_labels' length check.
const DefaultModelMaxLength = 2048

// Example is one sample ready for batching.
type Example struct {
	Encoded
	// Pixels is the CHW float32 image (3*Size*Size), nil when the sample has no image and no
	// "<image>" token.
	Pixels []float32
	// ImageIsZero is true when Pixels is the all-zero stand-in for a sample whose text has "<image>"
	// but which has no image file.
	ImageIsZero bool
}

// LoadExample is LoadExampleMaxLen with DefaultModelMaxLength.
func LoadExample(s Sample, imagesDir string, enc Encoder, pp PreprocessConfig) (Example, error) {
	return LoadExampleMaxLen(s, imagesDir, enc, pp, DefaultModelMaxLength)
}

// LoadExampleMaxLen tokenises a sample (EncodeConversation with maxLen) and prepares its image with
// TinyLLaVA's LazySupervisedDataset rules:
//   - "image" set: the file imagesDir/image (an absolute image path is used as is) is loaded and
//     preprocessed; a missing or corrupt file is an error. If the text has no "<image>" token the
//     pixels are still returned, as TinyLLaVA does, but HasImageToken is false and the model splices
//     no features (LLaVA's prepare_inputs uses zero image features for such a sample).
//   - no "image" but "<image>" in the text: Pixels is an all-zero 3*Size*Size tensor, ImageIsZero.
//   - neither: Pixels is nil (text-only sample, no image features).
//
// More than one image token is an error (one image per sample). Errors name the sample id.
func LoadExampleMaxLen(s Sample, imagesDir string, enc Encoder, pp PreprocessConfig, maxLen int) (Example, error) {
	fail := func(err error) (Example, error) {
		if s.ID != "" {
			return Example{}, fmt.Errorf("data: sample id %q: %w", s.ID, err)
		}
		return Example{}, fmt.Errorf("data: sample: %w", err)
	}
	encd, err := EncodeConversation(enc, s.Conversations, maxLen)
	if err != nil {
		return fail(err)
	}
	encd.ID = s.ID
	n := 0
	for _, id := range encd.InputIDs {
		if id == ImageTokenIndex {
			n++
		}
	}
	if n > 1 {
		return fail(fmt.Errorf("%d image tokens, but a sample carries at most one image", n))
	}
	ex := Example{Encoded: encd}
	switch {
	case s.Image != "":
		path := s.Image
		if !filepath.IsAbs(path) {
			path = filepath.Join(imagesDir, path)
		}
		img, err := LoadImage(path)
		if err != nil {
			return fail(err)
		}
		if ex.Pixels, err = Preprocess(img, pp); err != nil {
			return fail(fmt.Errorf("image %q: %w", path, err))
		}
	case encd.HasImageToken:
		if err := pp.validate(); err != nil {
			return fail(err)
		}
		ex.Pixels = make([]float32, 3*pp.Size*pp.Size)
		ex.ImageIsZero = true
	}
	return ex, nil
}
