package tinyllava

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/safetensors"
)

// TokenizerFiles are the files copied from a model folder into a saved one when present.
var TokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
	"vocab.json", "merges.txt", "added_tokens.json", "preprocessor_config.json", "generation_config.json"}

// Save writes the model in TinyLLaVA Hugging Face layout: config.json, model.safetensors
// (dtype F32 or BF16) and the tokenizer / preprocessor files copied from assetsDir. The folder is
// written beside dir and renamed into place, so dir is never left half-written; an existing dir
// is replaced.
func (m *Model) Save(dir string, dtype safetensors.DType, assetsDir string) error {
	if dtype == "" {
		dtype = safetensors.F32
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := m.writeConfig(filepath.Join(tmp, "config.json")); err != nil {
		return err
	}
	if err := m.writeWeights(filepath.Join(tmp, "model.safetensors"), dtype); err != nil {
		return err
	}
	if assetsDir != "" {
		for _, f := range TokenizerFiles {
			if err := copyFile(filepath.Join(assetsDir, f), filepath.Join(tmp, f)); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("copying %s: %w", f, err)
			}
		}
	}
	old := ""
	if _, err := os.Stat(dir); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return err
	}
	ok = true
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}

// writeConfig writes the config.json the model was loaded with, with the shape fields
// switchkd knows set from the live configuration.
func (m *Model) writeConfig(path string) error {
	c := m.Config
	raw := map[string]any{}
	for k, v := range c.Raw {
		raw[k] = v
	}
	text := map[string]any{}
	if t, ok := raw["text_config"].(map[string]any); ok {
		for k, v := range t {
			text[k] = v
		}
	}
	tc := c.Text
	for k, v := range map[string]any{"model_type": "qwen2", "vocab_size": tc.VocabSize, "hidden_size": tc.HiddenSize,
		"intermediate_size": tc.IntermediateSize, "num_hidden_layers": tc.NumHiddenLayers,
		"num_attention_heads": tc.NumAttentionHeads, "num_key_value_heads": tc.NumKeyValueHeads,
		"rope_theta": tc.RopeTheta, "rms_norm_eps": tc.RMSNormEps, "tie_word_embeddings": tc.TieWordEmbeddings,
		"max_position_embeddings": tc.MaxPositionEmbeddings, "hidden_act": "silu"} {
		text[k] = v
	}
	vision := map[string]any{}
	if v, ok := raw["vision_config"].(map[string]any); ok {
		for k, x := range v {
			vision[k] = x
		}
	}
	vc := c.Vision
	for k, v := range map[string]any{"model_type": "siglip_vision_model", "hidden_size": vc.HiddenSize,
		"intermediate_size": vc.IntermediateSize, "num_hidden_layers": vc.NumHiddenLayers,
		"num_attention_heads": vc.NumAttentionHeads, "num_channels": vc.NumChannels, "image_size": vc.ImageSize,
		"patch_size": vc.PatchSize, "layer_norm_eps": vc.LayerNormEps, "hidden_act": vc.HiddenAct} {
		vision[k] = v
	}
	raw["text_config"], raw["vision_config"] = text, vision
	if _, ok := raw["model_type"]; !ok {
		raw["model_type"] = "tinyllava"
	}
	if _, ok := raw["architectures"]; !ok {
		raw["architectures"] = []string{"TinyLlavaForConditionalGeneration"}
	}
	raw["connector_type"] = c.ConnectorType
	raw["vision_feature_layer"] = c.VisionFeatureLayer
	raw["vision_feature_select_strategy"] = c.VisionFeatureSelectStrategy
	raw["image_aspect_ratio"] = c.ImageAspectRatio
	raw["tokenizer_model_max_length"] = c.TokenizerModelMaxLength
	raw["hidden_size"] = tc.HiddenSize
	raw["vocab_size"] = tc.VocabSize
	raw["tie_word_embeddings"] = tc.TieWordEmbeddings
	b, err := json.MarshalIndent(raw, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeWeights streams every tensor into one safetensors file, one tensor in memory at a time.
func (m *Model) writeWeights(path string, dtype safetensors.DType) error {
	names := make([]string, 0, len(m.Params.T))
	for n := range m.Params.T {
		names = append(names, n)
	}
	sort.Strings(names)
	infos := make([]safetensors.TensorInfo, len(names))
	for i, n := range names {
		infos[i] = safetensors.TensorInfo{Name: n, DType: dtype, Shape: m.Params.T[n].Shape().Dimensions}
	}
	w, err := safetensors.NewWriter(path, infos, map[string]string{"format": "pt"})
	if err != nil {
		return err
	}
	for _, n := range names {
		var werr error
		err := tensors.ConstFlatData(m.Params.T[n], func(flat []float32) { werr = w.WriteTensor(n, flat) })
		if err == nil {
			err = werr
		}
		if err != nil {
			w.Abort()
			return fmt.Errorf("writing tensor %s: %w", n, err)
		}
	}
	return w.Close()
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
