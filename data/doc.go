// Package data turns LLaVA-style training/eval samples into what a TinyLLaVA model consumes:
// token ids with IMAGE_TOKEN_INDEX placeholders, training labels with IGNORE_INDEX masking, and
// CHW float32 pixel tensors. It reproduces TinyLLaVA Factory's conventions:
//
//   - Images are read as PIL's Image.open(...).convert("RGB") reads them (alpha dropped without
//     compositing, grey/palette expanded), see ToRGB.
//   - Resizing is a port of Pillow's ImagingResample BICUBIC path (8-bit fixed point, horizontal pass
//     then vertical pass), see ResizeBicubic. The "pad" aspect option is ExpandToSquare.
//   - Normalisation follows the Hugging Face image processors: float32(x * (1/255)), then (x - mean) / std
//     in float32, see Preprocess.
//   - Prompts follow the `qwen2_base` template; labels follow Template.make_labels/_make_masks
//     (including the "-1" on the instruction length and the mismatch rule), see EncodeConversation.
//
// The package is pure data: it does not depend on the model engine. Truncation to
// tokenizer_model_max_length is NOT done here: TinyLLaVA cuts the sequence after the image features
// have been spliced in, which is the model's job.
package data

const (
	// IgnoreIndex marks a label position that is not supervised (TinyLLaVA IGNORE_INDEX).
	IgnoreIndex = -100
	// ImageTokenIndex is the placeholder id where the image features are spliced in
	// (TinyLLaVA IMAGE_TOKEN_INDEX).
	ImageTokenIndex = -200
	// ImageToken is the textual image placeholder in LLaVA conversations (DEFAULT_IMAGE_TOKEN).
	ImageToken = "<image>"
)
