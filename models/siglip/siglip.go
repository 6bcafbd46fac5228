// Package siglip is the SigLIP vision transformer as TinyLLaVA uses it: patch embedding
// (a stride-patch convolution, computed as patchify + matmul), learned position embeddings,
// pre-LayerNorm encoder layers, and features read from an intermediate layer.
//
// Tensor names are transformers' SiglipVisionModel under a prefix
// ("vision_tower._vision_tower." inside TinyLLaVA): vision_model.embeddings.*,
// vision_model.encoder.layers.{i}.*. post_layernorm and the pooling head are not used.
package siglip

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph"

	"github.com/switchkd/switchkd/models/layers"
)

// Config mirrors SiglipVisionConfig.
type Config struct {
	HiddenSize        int     `json:"hidden_size"`
	IntermediateSize  int     `json:"intermediate_size"`
	NumHiddenLayers   int     `json:"num_hidden_layers"`
	NumAttentionHeads int     `json:"num_attention_heads"`
	NumChannels       int     `json:"num_channels"`
	ImageSize         int     `json:"image_size"`
	PatchSize         int     `json:"patch_size"`
	LayerNormEps      float64 `json:"layer_norm_eps"`
	HiddenAct         string  `json:"hidden_act"`
}

// Defaults are transformers' SiglipVisionConfig defaults.
func Defaults() Config {
	return Config{HiddenSize: 768, IntermediateSize: 3072, NumHiddenLayers: 12, NumAttentionHeads: 12,
		NumChannels: 3, ImageSize: 224, PatchSize: 16, LayerNormEps: 1e-6, HiddenAct: "gelu_pytorch_tanh"}
}

// NumPatches is (image_size / patch_size)^2.
func (c Config) NumPatches() int { n := c.ImageSize / c.PatchSize; return n * n }

// Validate checks that the configuration describes a buildable tower.
func (c Config) Validate() error {
	switch {
	case c.HiddenSize <= 0 || c.IntermediateSize <= 0 || c.NumHiddenLayers <= 0 || c.NumChannels <= 0:
		return fmt.Errorf("siglip config: hidden_size, intermediate_size, num_hidden_layers and num_channels must be positive")
	case c.NumAttentionHeads <= 0 || c.HiddenSize%c.NumAttentionHeads != 0:
		return fmt.Errorf("siglip config: hidden_size %d is not divisible by num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	case c.PatchSize <= 0 || c.ImageSize < c.PatchSize:
		return fmt.Errorf("siglip config: image_size %d and patch_size %d must be positive, image_size >= patch_size", c.ImageSize, c.PatchSize)
	}
	switch c.HiddenAct {
	case "gelu_pytorch_tanh", "gelu", "gelu_new", "quick_gelu":
	default:
		return fmt.Errorf("siglip config: hidden_act %q is not supported", c.HiddenAct)
	}
	return nil
}

// Tensors lists the tensors used to compute the output of the first numLayers layers.
func (c Config) Tensors(prefix string, numLayers int) map[string][]int {
	h, p := c.HiddenSize, c.PatchSize
	e := prefix + "vision_model.embeddings."
	t := map[string][]int{
		e + "patch_embedding.weight":    {h, c.NumChannels, p, p},
		e + "patch_embedding.bias":      {h},
		e + "position_embedding.weight": {c.NumPatches(), h},
	}
	for i := 0; i < numLayers; i++ {
		l := fmt.Sprintf("%svision_model.encoder.layers.%d.", prefix, i)
		for _, n := range []string{"layer_norm1", "layer_norm2"} {
			t[l+n+".weight"], t[l+n+".bias"] = []int{h}, []int{h}
		}
		for _, n := range []string{"q_proj", "k_proj", "v_proj", "out_proj"} {
			t[l+"self_attn."+n+".weight"], t[l+"self_attn."+n+".bias"] = []int{h, h}, []int{h}
		}
		t[l+"mlp.fc1.weight"], t[l+"mlp.fc1.bias"] = []int{c.IntermediateSize, h}, []int{c.IntermediateSize}
		t[l+"mlp.fc2.weight"], t[l+"mlp.fc2.bias"] = []int{h, c.IntermediateSize}, []int{h}
	}
	return t
}

// LayersNeeded is how many encoder layers must run to produce hidden_states[featureLayer]
// (index 0 = embeddings, negative indices count from the end of num_hidden_layers+1 states).
func (c Config) LayersNeeded(featureLayer int) (int, error) {
	idx := featureLayer
	if idx < 0 {
		idx += c.NumHiddenLayers + 1
	}
	if idx < 0 || idx > c.NumHiddenLayers {
		return 0, fmt.Errorf("vision_feature_layer %d is out of range for a %d-layer vision tower", featureLayer, c.NumHiddenLayers)
	}
	return idx, nil
}

// Forward maps pixels [B, C, H, W] to the hidden states after numLayers encoder layers:
// [B, numPatches, hidden].
func Forward(w layers.Weights, prefix string, c Config, pixels *Node, numLayers int) *Node {
	x := Embeddings(w, prefix, c, pixels)
	for i := 0; i < numLayers; i++ {
		l := LayerPrefix(prefix, i)
		// Everything but the attention itself works per position: two blocks of positions
		// run side by side (layers.RowBlocks).
		qkv := layers.RowBlocks(func(in []*Node) []*Node { return projectQKV(w, l, c, in[0]) }, x)
		o := layers.Attention(qkv[0], qkv[1], qkv[2], nil, false)
		x = layers.RowBlocks(func(in []*Node) []*Node {
			x, h := postAttention(w, l, c, in[0], in[1])
			return []*Node{mlpOut(w, l, x, Activate(c.HiddenAct, h))}
		}, x, o)[0]
	}
	return x
}

// Embeddings maps pixels [B, C, H, W] to the encoder's input [B, numPatches, hidden]: patch
// embedding plus position embedding.
func Embeddings(w layers.Weights, prefix string, c Config, pixels *Node) *Node {
	dims := pixels.Shape().Dimensions
	b, ch, p := dims[0], dims[1], c.PatchSize
	n := c.ImageSize / p
	// Patchify: [B, C, n, p, n, p] -> [B, n, n, C, p, p] -> [B, n*n, C*p*p], matching the
	// conv weight's [out, C, p, p] flattening. A stride-p convolution without padding ignores
	// the last image_size mod p rows and columns (384 px at patch 14 gives 27x27 patches).
	x := pixels
	if n*p != dims[2] || n*p != dims[3] {
		x = Slice(x, AxisRange(), AxisRange(), AxisRange(0, n*p), AxisRange(0, n*p))
	}
	x = Reshape(x, b, ch, n, p, n, p)
	x = TransposeAllAxes(x, 0, 2, 4, 1, 3, 5)
	x = Reshape(x, b, n*n, ch*p*p)
	e := prefix + "vision_model.embeddings."
	kernel := Reshape(w(e+"patch_embedding.weight"), c.HiddenSize, ch*p*p)
	x = layers.Linear(x, kernel, w(e+"patch_embedding.bias"))
	return Add(x, InsertAxes(w(e+"position_embedding.weight"), 0))
}

// LayerPrefix is the name prefix of encoder layer i's tensors.
func LayerPrefix(prefix string, i int) string {
	return fmt.Sprintf("%svision_model.encoder.layers.%d.", prefix, i)
}

// The parts of one encoder layer, so that inference can run it as three graphs with the softmax
// and the activation on the host between them (tinyllava's host-kernel path):
//
//	scores, v = AttentionScores(x)     softmax(scores) = p
//	x1, h     = PostAttention(x, p, v) act(h) = a
//	x2        = MLPOut(x1, a)
//
// Forward computes the same functions in one graph.

// projectQKV is layer_norm1 and the q, k, v projections: [B, L, heads, head dim] each.
func projectQKV(w layers.Weights, l string, c Config, x *Node) []*Node {
	h := layers.LayerNorm(w, l+"layer_norm1", x, c.LayerNormEps)
	d := h.Shape().Dimensions
	heads := c.NumAttentionHeads
	proj := func(name string) *Node {
		return Reshape(layers.LinearW(w, l+"self_attn."+name, h, true), d[0], d[1], heads, c.HiddenSize/heads)
	}
	return []*Node{proj("q_proj"), proj("k_proj"), proj("v_proj")}
}

// postAttention adds out_proj(o) to x and returns it with fc1(layer_norm2(x)), before the
// activation.
func postAttention(w layers.Weights, l string, c Config, x, o *Node) (*Node, *Node) {
	d := o.Shape().Dimensions
	x = Add(x, layers.LinearW(w, l+"self_attn.out_proj", Reshape(o, d[0], d[1], c.HiddenSize), true))
	h := layers.LayerNorm(w, l+"layer_norm2", x, c.LayerNormEps)
	return x, layers.LinearW(w, l+"mlp.fc1", h, true)
}

// mlpOut adds fc2(a) to x (a: fc1's output after the activation).
func mlpOut(w layers.Weights, l string, x, a *Node) *Node {
	return Add(x, layers.LinearW(w, l+"mlp.fc2", a, true))
}

// AttentionScores runs layer l's first part on x [B, L, hidden]: the attention scores
// [B, heads, L, L] (layers.AttentionScores) and the values v [B, L, heads, head dim].
func AttentionScores(w layers.Weights, l string, c Config, x *Node) (scores, v *Node) {
	qkv := layers.RowBlocks(func(in []*Node) []*Node { return projectQKV(w, l, c, in[0]) }, x)
	return layers.AttentionScores(qkv[0], qkv[1]), qkv[2]
}

// PostAttention runs layer l's second part: the attention output from the softmaxed scores p and
// v, out_proj and the residual (x1), and fc1 of layer_norm2 before the activation (h).
func PostAttention(w layers.Weights, l string, c Config, x, p, v *Node) (x1, h *Node) {
	o := layers.AttentionValues(p, v, c.NumAttentionHeads)
	out := layers.RowBlocks(func(in []*Node) []*Node {
		x1, h := postAttention(w, l, c, in[0], in[1])
		return []*Node{x1, h}
	}, x, o)
	return out[0], out[1]
}

// MLPOut runs layer l's last part: x1 + fc2(a), a the activated fc1 output.
func MLPOut(w layers.Weights, l string, x1, a *Node) *Node {
	return layers.RowBlocks(func(in []*Node) []*Node { return []*Node{mlpOut(w, l, in[0], in[1])} }, x1, a)[0]
}

// Activate applies the named hidden_act (see Validate).
func Activate(name string, x *Node) *Node {
	switch name {
	case "gelu":
		return layers.GeluErf(x)
	case "quick_gelu":
		return Mul(x, Sigmoid(MulScalar(x, 1.702)))
	default: // gelu_pytorch_tanh, gelu_new
		return layers.GeluTanh(x)
	}
}
