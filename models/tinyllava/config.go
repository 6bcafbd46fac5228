// Package tinyllava assembles a TinyLLaVA model (SigLIP vision tower -> connector -> Qwen2 LLM)
// from a Hugging Face checkpoint folder as TinyLLaVA Factory writes it, and runs it: logits,
// per-sample negative log-likelihood, and generation with a KV cache.
package tinyllava

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/switchkd/switchkd/models/connector"
	"github.com/switchkd/switchkd/models/qwen2"
	"github.com/switchkd/switchkd/models/siglip"
)

// ImageTokenIndex marks where image features are spliced into input ids (TinyLLaVA's -200).
const ImageTokenIndex = -200

// IgnoreIndex marks unsupervised labels.
const IgnoreIndex = -100

// Config mirrors TinyLLaVA's config.json (TinyLlavaConfig) for the fields switchkd uses.
// Raw keeps the whole file so a saved student carries every field it was loaded with.
type Config struct {
	ModelType                   string        `json:"model_type"`
	ConnectorType               string        `json:"connector_type"`
	VisionFeatureLayer          int           `json:"vision_feature_layer"`
	VisionFeatureSelectStrategy string        `json:"vision_feature_select_strategy"`
	ImageAspectRatio            string        `json:"image_aspect_ratio"`
	TokenizerModelMaxLength     int           `json:"tokenizer_model_max_length"`
	PadToken                    string        `json:"pad_token"`
	Text                        qwen2.Config  `json:"-"`
	Vision                      siglip.Config `json:"-"`
	// TieExplicit is false when text_config does not say whether embeddings are tied; the
	// loader then decides from the presence of lm_head.weight.
	TieExplicit bool           `json:"-"`
	Raw         map[string]any `json:"-"`
}

// LoadConfig reads and validates dir/config.json.
func LoadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading model config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses a TinyLLaVA config.json, fills transformers' defaults for missing fields
// and validates the result.
func ParseConfig(b []byte) (*Config, error) {
	c := &Config{VisionFeatureLayer: -2, VisionFeatureSelectStrategy: "patch", ImageAspectRatio: "square",
		TokenizerModelMaxLength: 2048}
	if err := json.Unmarshal(b, &c.Raw); err != nil {
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("malformed config: %w", err)
	}
	var sub struct {
		Text   json.RawMessage `json:"text_config"`
		Vision json.RawMessage `json:"vision_config"`
	}
	if err := json.Unmarshal(b, &sub); err != nil {
		return nil, fmt.Errorf("malformed config: %w", err)
	}
	if len(sub.Text) == 0 || string(sub.Text) == "null" {
		return nil, fmt.Errorf("text_config is missing (switchkd reads the LLM's shape from config.json only)")
	}
	if len(sub.Vision) == 0 || string(sub.Vision) == "null" {
		return nil, fmt.Errorf("vision_config is missing")
	}
	var kind struct {
		ModelType string `json:"model_type"`
		Tie       *bool  `json:"tie_word_embeddings"`
	}
	if err := json.Unmarshal(sub.Text, &kind); err != nil {
		return nil, fmt.Errorf("text_config: %w", err)
	}
	switch kind.ModelType {
	case "qwen2", "":
	default:
		return nil, fmt.Errorf("text_config.model_type %q is not supported (supported: qwen2)", kind.ModelType)
	}
	c.Text = qwen2.Defaults()
	if err := json.Unmarshal(sub.Text, &c.Text); err != nil {
		return nil, fmt.Errorf("text_config: %w", err)
	}
	c.TieExplicit = kind.Tie != nil
	if c.Text.NumKeyValueHeads == 0 {
		c.Text.NumKeyValueHeads = c.Text.NumAttentionHeads
	}
	c.Vision = siglip.Defaults()
	if err := json.Unmarshal(sub.Vision, &c.Vision); err != nil {
		return nil, fmt.Errorf("vision_config: %w", err)
	}
	if mt, _ := c.Raw["vision_config"].(map[string]any)["model_type"].(string); mt != "" && mt != "siglip_vision_model" {
		return nil, fmt.Errorf("vision_config.model_type %q is not supported (supported: siglip_vision_model)", mt)
	}
	if err := c.Text.Validate(); err != nil {
		return nil, err
	}
	if err := c.Vision.Validate(); err != nil {
		return nil, err
	}
	if c.ConnectorType == "" {
		return nil, fmt.Errorf("connector_type is missing")
	}
	if _, err := connector.Depth(c.ConnectorType); err != nil {
		return nil, err
	}
	if _, err := c.Vision.LayersNeeded(c.VisionFeatureLayer); err != nil {
		return nil, err
	}
	switch c.VisionFeatureSelectStrategy {
	case "patch", "cls_patch":
	default:
		return nil, fmt.Errorf("vision_feature_select_strategy %q is not supported (patch or cls_patch)", c.VisionFeatureSelectStrategy)
	}
	if c.TokenizerModelMaxLength <= 0 {
		return nil, fmt.Errorf("tokenizer_model_max_length must be positive")
	}
	return c, nil
}

// NumImageFeatures is the number of image tokens spliced per image.
func (c *Config) NumImageFeatures() int {
	n := c.Vision.NumPatches()
	if c.VisionFeatureSelectStrategy == "patch" {
		n--
	}
	return n
}

// Tensors lists every tensor the model reads, with its shape.
func (c *Config) Tensors() map[string][]int {
	n, _ := c.Vision.LayersNeeded(c.VisionFeatureLayer)
	t := c.Vision.Tensors(VisionPrefix, n)
	ct, _ := connector.Tensors(c.ConnectorType, c.Vision.HiddenSize, c.Text.HiddenSize)
	for k, v := range ct {
		t[k] = v
	}
	for k, v := range c.Text.Tensors(LLMPrefix) {
		t[k] = v
	}
	return t
}

// Prefixes of the three parts in a TinyLLaVA checkpoint.
const (
	VisionPrefix = "vision_tower._vision_tower."
	LLMPrefix    = "language_model."
)
