// Package vlm ties a TinyLLaVA model to its tokenizer and image preprocessing: what the CLI,
// evaluation and the demo use to score and generate from LLaVA-style data.
package vlm

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/switchkd/switchkd/data"
	"github.com/switchkd/switchkd/engine"
	"github.com/switchkd/switchkd/models/tinyllava"
	"github.com/switchkd/switchkd/tokenizer"
)

// VLM is a loaded model with its tokenizer and preprocessing.
type VLM struct {
	Model     *tinyllava.Model
	Tokenizer *tokenizer.Tokenizer
	PP        data.PreprocessConfig
	// StopIDs end generation: the template's "<|endoftext|>" and the tokenizer's eos, when known.
	StopIDs []int
}

// Load reads a TinyLLaVA Hugging Face folder (config.json, safetensors, tokenizer.json) onto
// the named backend ("" = the default pure-Go backend).
func Load(dir, backend string) (*VLM, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("model folder: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("model folder %s is not a directory", dir)
	}
	b, err := engine.Backend(backend)
	if err != nil {
		return nil, err
	}
	m, err := tinyllava.Load(dir, b)
	if err != nil {
		return nil, err
	}
	return FromModel(m, dir)
}

// FromModel attaches the tokenizer and preprocessing found in assetsDir to a model.
func FromModel(m *tinyllava.Model, assetsDir string) (*VLM, error) {
	tok, err := tokenizer.Load(filepath.Join(assetsDir, "tokenizer.json"))
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() > m.Config.Text.VocabSize {
		return nil, fmt.Errorf("%s: the tokenizer has %d tokens but the model's vocabulary is %d", assetsDir, tok.VocabSize(), m.Config.Text.VocabSize)
	}
	pp, err := data.LoadPreprocessConfig(assetsDir, m.Config.Vision.ImageSize)
	if err != nil {
		return nil, err
	}
	v := &VLM{Model: m, Tokenizer: tok, PP: pp}
	if id, ok := tok.TokenID(data.EOSText); ok {
		v.StopIDs = append(v.StopIDs, id)
	}
	if eos, ok := eosToken(assetsDir); ok {
		if id, ok := tok.TokenID(eos); ok && (len(v.StopIDs) == 0 || v.StopIDs[0] != id) {
			v.StopIDs = append(v.StopIDs, id)
		}
	}
	return v, nil
}

// Input turns a LLaVA sample into model input: template, token ids, labels and the image
// (preprocessed; zeros when the text has <image> but the sample no image file).
func (v *VLM) Input(s data.Sample, imagesDir string) (tinyllava.Input, error) {
	ex, err := data.LoadExampleMaxLen(s, imagesDir, v.Tokenizer, v.PP, v.Model.Config.TokenizerModelMaxLength)
	if err != nil {
		return tinyllava.Input{}, err
	}
	return ExampleInput(ex), nil
}

// ExampleInput converts a prepared example to model input.
func ExampleInput(ex data.Example) tinyllava.Input {
	in := tinyllava.Input{ID: ex.ID, IDs: ex.InputIDs, Labels: ex.Labels}
	if ex.HasImageToken && ex.Pixels != nil {
		in.Images = [][]float32{ex.Pixels}
	}
	return in
}

// PromptInput builds a generation input: the qwen2_base prompt for question (ending with
// "ASSISTANT:"), with the image at imagePath ("" = none).
func (v *VLM) PromptInput(id, imagePath, question string) (tinyllava.Input, error) {
	prompt := data.GenerationPrompt(question, imagePath != "")
	in := tinyllava.Input{ID: id, IDs: data.EncodePrompt(v.Tokenizer, prompt)}
	if imagePath != "" {
		img, err := data.LoadImage(imagePath)
		if err != nil {
			return in, err
		}
		px, err := data.Preprocess(img, v.PP)
		if err != nil {
			return in, fmt.Errorf("%s: %w", imagePath, err)
		}
		in.Images = [][]float32{px}
	}
	return in, nil
}

// GenerateText decodes new tokens for each input and returns the texts and ids.
func (v *VLM) GenerateText(inputs []tinyllava.Input, opts tinyllava.GenerateOptions) ([]string, [][]int, error) {
	if opts.StopIDs == nil {
		opts.StopIDs = v.StopIDs
	}
	ids, err := v.Model.Generate(inputs, opts)
	if err != nil {
		return nil, nil, err
	}
	texts := make([]string, len(ids))
	for i, x := range ids {
		texts[i] = v.Tokenizer.Decode(x, true)
	}
	return texts, ids, nil
}
