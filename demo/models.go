package demo

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/data"
	"github.com/switchkd/switchkd/models/tinyllava"
	"github.com/switchkd/switchkd/tokenizer"
	"github.com/switchkd/switchkd/world"
)

// VisionSpec is the shape of a SigLIP-style vision tower. TinyLLaVA reads the output of the
// second-to-last layer (vision_feature_layer -2), so Layers-1 layers do the work.
type VisionSpec struct {
	Hidden, Intermediate, Layers, Heads, Patch int
}

// LLMSpec is the shape of a Qwen2-style decoder (grouped-query attention, SwiGLU, RMSNorm, RoPE,
// tied embeddings).
type LLMSpec struct {
	Hidden, Intermediate, Layers, Heads, KVHeads int
}

// ModelSpec is a TinyLLaVA model: vision tower -> mlp2x_gelu connector -> LLM.
type ModelSpec struct {
	Name   string
	Vision VisionSpec
	LLM    LLMSpec
}

// String is a one-line description ("teacher: ViT 96x4 (patch 8) -> mlp2x_gelu -> Qwen2 160x4 ...").
func (s ModelSpec) String() string {
	return fmt.Sprintf("%s -> mlp2x_gelu -> Qwen2 h%d x%d layers, %d heads / %d kv heads, mlp %d",
		s.VisionString(), s.LLM.Hidden, s.LLM.Layers, s.LLM.Heads, s.LLM.KVHeads, s.LLM.Intermediate)
}

// VisionString describes the vision tower ("ViT h64 x4 layers (patch 8)").
func (s ModelSpec) VisionString() string {
	return fmt.Sprintf("ViT h%d x%d layers (patch %d)", s.Vision.Hidden, s.Vision.Layers, s.Vision.Patch)
}

// maxLen is the demo models' tokenizer_model_max_length: far above the world's longest sample
// (about 140 tokens with the image), so nothing is ever cut.
const maxLen = 512

// ConfigJSON is the TinyLLaVA config.json of a model of this shape over a vocabulary of vocab
// ids (pad = eos = "<|endoftext|>" at id eos) and square images of imageSize pixels.
func (s ModelSpec) ConfigJSON(vocab, eos, imageSize int) ([]byte, error) {
	name := "switchkd/demo-" + s.Name
	text := map[string]any{
		"_name_or_path": name + "-qwen2", "architectures": []string{"Qwen2ForCausalLM"}, "model_type": "qwen2",
		"bos_token_id": eos, "eos_token_id": eos, "vocab_size": vocab,
		"hidden_size": s.LLM.Hidden, "intermediate_size": s.LLM.Intermediate, "num_hidden_layers": s.LLM.Layers,
		"num_attention_heads": s.LLM.Heads, "num_key_value_heads": s.LLM.KVHeads, "max_window_layers": s.LLM.Layers,
		"rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "hidden_act": "silu", "tie_word_embeddings": true,
		"max_position_embeddings": 4 * maxLen, "sliding_window": 4 * maxLen, "use_sliding_window": false,
		"torch_dtype": "float32", "use_cache": true,
	}
	vision := map[string]any{
		"model_type": "siglip_vision_model", "model_name_or_path": name + "-siglip", "model_name_or_path2": "",
		"hidden_size": s.Vision.Hidden, "intermediate_size": s.Vision.Intermediate, "num_hidden_layers": s.Vision.Layers,
		"num_attention_heads": s.Vision.Heads, "image_size": imageSize, "patch_size": s.Vision.Patch,
		"num_channels": 3, "layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh",
	}
	cfg := map[string]any{
		"architectures": []string{"TinyLlavaForConditionalGeneration"}, "model_type": "tinyllava",
		"connector_type": "mlp2x_gelu", "hidden_size": s.LLM.Hidden, "vocab_size": vocab,
		"ignore_index": tinyllava.IgnoreIndex, "image_token_index": tinyllava.ImageTokenIndex,
		"image_aspect_ratio": "square", "pad_token": data.EOSText, "pad_token_id": eos,
		"llm_model_name_or_path": name + "-qwen2", "tokenizer_name_or_path": name + "-qwen2",
		"tokenizer_model_max_length": maxLen, "tokenizer_padding_side": "right", "tokenizer_use_fast": false,
		"vision_model_name_or_path": name + "-siglip", "vision_model_name_or_path2": "",
		"vision_hidden_size": s.Vision.Hidden,
		// The output of the second-to-last layer, as TinyLLaVA reads SigLIP. "cls_patch" keeps all
		// 64 patch tokens: SigLIP has no CLS token, and "patch" would drop the top-left patch,
		// which on a 64x64 image is a visible part of the top-left grid cell.
		"vision_feature_layer": -2, "vision_feature_select_strategy": "cls_patch",
		"tune_type_connector": "full", "tune_type_llm": "full", "tune_type_vision_tower": "full",
		"tune_vision_tower_from_layer": 0, "torch_dtype": "float32", "transformers_version": "4.40.1",
		"use_cache": true, "text_config": text, "vision_config": vision,
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// Config parses ConfigJSON.
func (s ModelSpec) Config(vocab, eos, imageSize int) (*tinyllava.Config, error) {
	b, err := s.ConfigJSON(vocab, eos, imageSize)
	if err != nil {
		return nil, err
	}
	return tinyllava.ParseConfig(b)
}

// TokenizerCorpus is the world's texts as training lays them out: every caption and QA sample
// as its qwen2_base prompt (system prompt, "USER: ", question, " ASSISTANT: ", answer,
// "<|endoftext|>"), then world.Corpus. BPE then learns the template's words whole (the system
// prompt costs ~30 tokens, not ~100) and the answers with their leading space (" No", " red"),
// so an answer is one token, as with Qwen's tokenizer, instead of a lone space and a word.
func TokenizerCorpus(m *world.Manifest) []string {
	var c []string
	add := func(ss []world.Sample) {
		for _, s := range ss {
			c = append(c, data.ConversationPrompt([]string{s.Question()}, []string{s.Answer()}))
		}
	}
	add(m.Captions())
	for _, sp := range world.Splits {
		add(m.Samples(sp))
	}
	return append(c, world.Corpus(m)...)
}

// WriteAssets trains the byte-level BPE tokenizer on the world's texts and writes the files a
// TinyLLaVA folder carries besides its weights into dir: tokenizer.json, tokenizer_config.json,
// special_tokens_map.json, generation_config.json and preprocessor_config.json (SigLIP: bicubic,
// mean/std 0.5, imageSize). "<|endoftext|>" is the one added (special) token; "<image>" is not
// a token (TinyLLaVA splits the prompt on it). It returns the tokenizer, its vocabulary size
// and the id of "<|endoftext|>".
func WriteAssets(dir string, m *world.Manifest, vocabSize, imageSize int) (*tokenizer.Tokenizer, int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, err
	}
	tok, err := tokenizer.TrainBPE(TokenizerCorpus(m), vocabSize, []string{data.EOSText})
	if err != nil {
		return nil, 0, err
	}
	if err := tok.Save(filepath.Join(dir, "tokenizer.json")); err != nil {
		return nil, 0, err
	}
	eos, ok := tok.TokenID(data.EOSText)
	if !ok {
		return nil, 0, fmt.Errorf("demo: the trained tokenizer has no %s", data.EOSText)
	}
	files := map[string]any{
		"tokenizer_config.json": map[string]any{
			"add_bos_token": false, "add_prefix_space": false, "bos_token": nil,
			"added_tokens_decoder": map[string]any{fmt.Sprint(eos): map[string]any{"content": data.EOSText,
				"lstrip": false, "normalized": false, "rstrip": false, "single_word": false, "special": true}},
			"clean_up_tokenization_spaces": false, "eos_token": data.EOSText, "pad_token": data.EOSText,
			"unk_token": data.EOSText, "errors": "replace", "model_max_length": maxLen, "padding_side": "right",
			"split_special_tokens": false, "tokenizer_class": "Qwen2Tokenizer",
		},
		"special_tokens_map.json": map[string]any{"eos_token": data.EOSText, "pad_token": data.EOSText, "unk_token": data.EOSText},
		"generation_config.json":  map[string]any{"bos_token_id": eos, "eos_token_id": eos, "max_new_tokens": 64},
		"preprocessor_config.json": map[string]any{
			"do_normalize": true, "do_rescale": true, "do_resize": true, "resample": 3,
			"image_mean": []float64{0.5, 0.5, 0.5}, "image_std": []float64{0.5, 0.5, 0.5},
			"image_processor_type": "SiglipImageProcessor", "processor_class": "SiglipProcessor",
			"rescale_factor": 1.0 / 255, "size": map[string]int{"height": imageSize, "width": imageSize},
		},
	}
	for name, v := range files {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return nil, 0, err
		}
		if err := os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644); err != nil {
			return nil, 0, err
		}
	}
	return tok, tok.VocabSize(), nil
}

// NewModel builds a randomly initialised model of spec, each part initialised as its own code
// does from scratch (see reinit). When tower is not nil its tensors (a vision tower by name, see
// VisionTower) replace the new model's: teacher and students start from the same pre-trained
// tower, as in the paper. Dir is set to assetsDir so a saved model carries the tokenizer and
// preprocessor files.
func NewModel(spec ModelSpec, vocab, eos, imageSize int, seed uint64, tower map[string]*tensors.Tensor, assetsDir string, b compute.Backend) (*tinyllava.Model, error) {
	cfg, err := spec.Config(vocab, eos, imageSize)
	if err != nil {
		return nil, fmt.Errorf("demo: %s config: %w", spec.Name, err)
	}
	p := tinyllava.RandomParams(cfg, 0.02, seed)
	reinit(p, seed)
	for n, x := range tower {
		if !strings.HasPrefix(n, tinyllava.VisionPrefix) {
			return nil, fmt.Errorf("demo: %s: tensor %s is not a vision tower's", spec.Name, n)
		}
		if _, ok := p[n]; !ok {
			continue
		}
		if !slices.Equal(p[n].Shape().Dimensions, x.Shape().Dimensions) {
			return nil, fmt.Errorf("demo: %s: vision tensor %s has shape %v, the source tower's is %v", spec.Name, n, p[n].Shape().Dimensions, x.Shape().Dimensions)
		}
		p[n] = tensors.FromFlatDataAndDimensions(tensors.MustCopyFlatData[float32](x), x.Shape().Dimensions...)
	}
	m, err := tinyllava.New(cfg, p, b)
	if err != nil {
		return nil, err
	}
	m.Dir = assetsDir
	return m, nil
}

// VisionTower returns host copies of m's vision-tower tensors, by name: a snapshot that later
// training of m leaves alone.
func VisionTower(m *tinyllava.Model) map[string]*tensors.Tensor {
	out := map[string]*tensors.Tensor{}
	for n, x := range m.Params.T {
		if strings.HasPrefix(n, tinyllava.VisionPrefix) {
			out[n] = tensors.FromFlatDataAndDimensions(tensors.MustCopyFlatData[float32](x), x.Shape().Dimensions...)
		}
	}
	return out
}

// ParamCount is the number of parameters the model uses (tied embeddings counted once).
func ParamCount(m *tinyllava.Model) int {
	n := 0
	for _, name := range m.Params.Used {
		n += m.Params.T[name].Shape().Size()
	}
	return n
}

// reinit re-draws the vision tower and the connector the way their own code initialises them
// from scratch; tinyllava.RandomParams gives every weight N(0, 0.02), which is Qwen2's
// _init_weights (kept for the LLM):
//   - SigLIP (SiglipPreTrainedModel._init_weights): patch embedding LeCun normal (std
//     1/sqrt(fan_in)), attention and MLP weights Xavier uniform, biases 0 (position embeddings
//     N(0, 1/sqrt(hidden)) already).
//   - the connector (TinyLLaVA's nn.Sequential of nn.Linear): PyTorch's default, weights and
//     biases uniform in +-1/sqrt(fan_in).
//
// With N(0, 0.02) everywhere the image tokens enter the LLM about 5x smaller than the text
// embeddings, and training from scratch takes far longer to start using them.
func reinit(p map[string]*tensors.Tensor, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x1417))
	names := make([]string, 0, len(p))
	for n := range p {
		names = append(names, n)
	}
	sort.Strings(names)
	draw := func(n string, f func() float64) {
		x := p[n]
		v := make([]float32, x.Shape().Size())
		for i := range v {
			v[i] = float32(f())
		}
		p[n] = tensors.FromFlatDataAndDimensions(v, x.Shape().Dimensions...)
	}
	for _, n := range names {
		dims := p[n].Shape().Dimensions
		switch {
		case strings.HasPrefix(n, "connector."):
			// Linear weights are [out, in]; the bias uses the weight's fan_in.
			w := p[strings.TrimSuffix(n, ".bias")+".weight"]
			if w == nil {
				w = p[n]
			}
			b := 1 / math.Sqrt(float64(w.Shape().Dimensions[len(w.Shape().Dimensions)-1]))
			draw(n, func() float64 { return (2*rng.Float64() - 1) * b })
		case strings.HasPrefix(n, tinyllava.VisionPrefix) && strings.HasSuffix(n, "patch_embedding.weight"):
			fanIn := dims[1] * dims[2] * dims[3]
			std := 1 / math.Sqrt(float64(fanIn))
			draw(n, func() float64 { return rng.NormFloat64() * std })
		case strings.HasPrefix(n, tinyllava.VisionPrefix) && strings.HasSuffix(n, ".weight") && len(dims) == 2 &&
			(strings.Contains(n, "self_attn.") || strings.Contains(n, "mlp.")):
			b := math.Sqrt(6 / float64(dims[0]+dims[1]))
			draw(n, func() float64 { return (2*rng.Float64() - 1) * b })
		}
	}
}
