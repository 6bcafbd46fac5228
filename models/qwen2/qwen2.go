// Package qwen2 is the Qwen2 / Qwen2.5 decoder: grouped-query attention with q/k/v biases,
// rotate-half RoPE, RMSNorm, SwiGLU MLP, tied or untied lm_head.
//
// Tensor names are those of transformers' Qwen2ForCausalLM under a prefix
// ("language_model." inside TinyLLaVA): model.embed_tokens, model.layers.{i}.*, model.norm, lm_head.
package qwen2

import (
	"fmt"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"

	"github.com/switchkd/switchkd/models/layers"
)

// Config mirrors the fields of a Qwen2 config.json that the forward pass needs.
type Config struct {
	VocabSize             int     `json:"vocab_size"`
	HiddenSize            int     `json:"hidden_size"`
	IntermediateSize      int     `json:"intermediate_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	NumKeyValueHeads      int     `json:"num_key_value_heads"`
	RopeTheta             float64 `json:"rope_theta"`
	RMSNormEps            float64 `json:"rms_norm_eps"`
	TieWordEmbeddings     bool    `json:"tie_word_embeddings"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	HiddenAct             string  `json:"hidden_act"`

	// Differentiated is set (by the caller, not config.json) when a graph will be
	// differentiated through this decoder. The SwiGLU gate then computes its pre-activation and
	// the SiLU as separate ops: the gradient of the fused matmul+SiLU would compute the matmul
	// a second time to get the pre-activation back.
	Differentiated bool `json:"-"`
}

// Defaults are transformers' Qwen2Config defaults, used for fields a config.json leaves out.
func Defaults() Config {
	return Config{VocabSize: 151936, HiddenSize: 4096, IntermediateSize: 22016, NumHiddenLayers: 32,
		NumAttentionHeads: 32, NumKeyValueHeads: 32, RopeTheta: 10000, RMSNormEps: 1e-6,
		MaxPositionEmbeddings: 32768, HiddenAct: "silu"}
}

// HeadDim is hidden_size / num_attention_heads.
func (c Config) HeadDim() int { return c.HiddenSize / c.NumAttentionHeads }

// Validate checks that the configuration describes a buildable model.
func (c Config) Validate() error {
	switch {
	case c.VocabSize <= 0 || c.HiddenSize <= 0 || c.IntermediateSize <= 0 || c.NumHiddenLayers <= 0:
		return fmt.Errorf("qwen2 config: vocab_size, hidden_size, intermediate_size and num_hidden_layers must be positive")
	case c.NumAttentionHeads <= 0 || c.HiddenSize%c.NumAttentionHeads != 0:
		return fmt.Errorf("qwen2 config: hidden_size %d is not divisible by num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	case c.NumKeyValueHeads <= 0 || c.NumAttentionHeads%c.NumKeyValueHeads != 0:
		return fmt.Errorf("qwen2 config: num_attention_heads %d is not divisible by num_key_value_heads %d", c.NumAttentionHeads, c.NumKeyValueHeads)
	case c.HeadDim()%2 != 0:
		return fmt.Errorf("qwen2 config: head dimension %d must be even for rotary embeddings", c.HeadDim())
	case c.HiddenAct != "" && c.HiddenAct != "silu":
		return fmt.Errorf("qwen2 config: hidden_act %q is not supported (only silu)", c.HiddenAct)
	case c.RopeTheta <= 0:
		return fmt.Errorf("qwen2 config: rope_theta must be positive")
	}
	return nil
}

// Tensors lists every tensor the decoder needs, with its shape, under prefix.
func (c Config) Tensors(prefix string) map[string][]int {
	h, kv, inter := c.HiddenSize, c.NumKeyValueHeads*c.HeadDim(), c.IntermediateSize
	t := map[string][]int{
		prefix + "model.embed_tokens.weight": {c.VocabSize, h},
		prefix + "model.norm.weight":         {h},
	}
	if !c.TieWordEmbeddings {
		t[prefix+"lm_head.weight"] = []int{c.VocabSize, h}
	}
	for i := 0; i < c.NumHiddenLayers; i++ {
		p := fmt.Sprintf("%smodel.layers.%d.", prefix, i)
		t[p+"input_layernorm.weight"] = []int{h}
		t[p+"post_attention_layernorm.weight"] = []int{h}
		t[p+"self_attn.q_proj.weight"] = []int{h, h}
		t[p+"self_attn.q_proj.bias"] = []int{h}
		t[p+"self_attn.k_proj.weight"] = []int{kv, h}
		t[p+"self_attn.k_proj.bias"] = []int{kv}
		t[p+"self_attn.v_proj.weight"] = []int{kv, h}
		t[p+"self_attn.v_proj.bias"] = []int{kv}
		t[p+"self_attn.o_proj.weight"] = []int{h, h}
		t[p+"mlp.gate_proj.weight"] = []int{inter, h}
		t[p+"mlp.up_proj.weight"] = []int{inter, h}
		t[p+"mlp.down_proj.weight"] = []int{h, inter}
	}
	return t
}

// Embed looks token ids [B, L] (int32) up in the embedding table: [B, L, hidden].
func Embed(w layers.Weights, prefix string, ids *Node) *Node {
	return Gather(w(prefix+"model.embed_tokens.weight"), InsertAxes(ids, -1))
}

// Cache holds the keys and values of every layer, each [B, Len, kvHeads, headDim], and the
// position (int32 scalar) at which the current inputs are written.
//
// A cache with nil K and V is filled by a prefill: the L inputs are written at positions 0..L-1
// of a fresh cache of length Len. Otherwise the inputs must be one token per row (L = 1),
// written at Pos. (The go backend has no DynamicUpdateSlice, so the one-token write is a
// select against a one-hot position mask: O(cache) per layer, small next to the matmuls.)
type Cache struct {
	K, V []*Node
	Pos  *Node
	Len  int
}

// Forward runs the decoder over input embeddings [B, L, hidden] at positions [B, L] (int32)
// and returns the final-normed hidden states [B, L, hidden].
//
// Without a cache, attention is causal over the L inputs (mask must then be nil: right-padded
// batches need no other mask, padded positions are simply never read by real ones). With a
// cache, keys and values are written at cache.Pos and attention runs over all Lmax cached
// positions under mask, a boolean [B, L, 1, Lmax] (true = may attend); the updated cache is
// returned.
func Forward(w layers.Weights, prefix string, c Config, embeds, positions, mask *Node, cache *Cache) (*Node, *Cache) {
	x := embeds
	cos, sin := Rotary(c, positions)
	var next *Cache
	var bias *Node // additive attention bias, shared by every layer
	switch {
	case cache == nil:
		bias = layers.CausalBias(x.Graph(), x.Shape().Dimensions[1])
	case cache.K == nil: // prefill: the cache holds exactly these L keys, so attend over them only
		bias = layers.MaskBias(SliceAxis(mask, 3, AxisRange(0, x.Shape().Dimensions[1])))
	default:
		bias = layers.MaskBias(mask)
	}
	if cache != nil {
		next = &Cache{Pos: cache.Pos, Len: cache.Len}
	}
	for i := 0; i < c.NumHiddenLayers; i++ {
		p := LayerPrefix(prefix, i)
		// Everything but the attention itself works per position: two blocks of positions
		// run side by side (layers.RowBlocks).
		qkv := layers.RowBlocks(func(in []*Node) []*Node { return projectQKV(w, p, c, in[0], in[1], in[2]) }, x, cos, sin)
		var kc, vc *Node
		if cache != nil && cache.K != nil {
			kc, vc = cache.K[i], cache.V[i]
		}
		o, kAll, vAll := attend(qkv[0], qkv[1], qkv[2], bias, kc, vc, cache)
		if cache != nil {
			next.K = append(next.K, kAll)
			next.V = append(next.V, vAll)
		}
		x = layers.RowBlocks(func(in []*Node) []*Node {
			x, h := postAttention(w, p, c, in[0], in[1])
			var gate *Node
			if c.Differentiated {
				gate = layers.SiLU(layers.LinearW(w, p+"mlp.gate_proj", h, false))
			} else {
				gate = layers.LinearSiLU(h, w(p+"mlp.gate_proj.weight"))
			}
			up := layers.LinearW(w, p+"mlp.up_proj", h, false)
			return []*Node{mlpOut(w, p, x, Mul(gate, up))}
		}, x, o)[0]
	}
	return FinalNorm(w, prefix, c, x), next
}

// LayerPrefix is the name prefix of decoder layer i's tensors.
func LayerPrefix(prefix string, i int) string { return fmt.Sprintf("%smodel.layers.%d.", prefix, i) }

// FinalNorm is the decoder's final RMSNorm.
func FinalNorm(w layers.Weights, prefix string, c Config, x *Node) *Node {
	return layers.RMSNorm(w(prefix+"model.norm.weight"), x, c.RMSNormEps)
}

// Rotary returns RoPE's cos and sin at positions [B, L] (int32).
func Rotary(c Config, positions *Node) (cos, sin *Node) {
	return layers.RotaryCosSin(positions, c.HeadDim(), c.RopeTheta)
}

// projectQKV is input_layernorm, the q, k, v projections ([B, L, heads, head dim]) and RoPE on q
// and k.
func projectQKV(w layers.Weights, p string, c Config, x, cos, sin *Node) []*Node {
	h := layers.RMSNorm(w(p+"input_layernorm.weight"), x, c.RMSNormEps)
	d := h.Shape().Dimensions
	ys := layers.LinearsW(w, h, true, QKVPrefixes(p)...)
	heads := func(y *Node, n int) *Node { return Reshape(y, d[0], d[1], n, c.HeadDim()) }
	q, k := heads(ys[0], c.NumAttentionHeads), heads(ys[1], c.NumKeyValueHeads)
	return []*Node{layers.ApplyRotary(q, cos, sin), layers.ApplyRotary(k, cos, sin), heads(ys[2], c.NumKeyValueHeads)}
}

// QKVPrefixes are the name prefixes of layer prefix p's q, k and v projections, in the order
// projectQKV reads them (layers.LinearsW: a prepared fused transpose must follow it).
func QKVPrefixes(p string) []string {
	a := p + "self_attn."
	return []string{a + "q_proj", a + "k_proj", a + "v_proj"}
}

// postAttention adds o_proj(o) to x and returns it with post_attention_layernorm of the sum.
func postAttention(w layers.Weights, p string, c Config, x, o *Node) (*Node, *Node) {
	d := o.Shape().Dimensions
	x = Add(x, layers.LinearW(w, p+"self_attn.o_proj", Reshape(o, d[0], d[1], c.HiddenSize), false))
	return x, layers.RMSNorm(w(p+"post_attention_layernorm.weight"), x, c.RMSNormEps)
}

// mlpOut adds down_proj(a) to x (a = silu(gate) * up).
func mlpOut(w layers.Weights, p string, x, a *Node) *Node {
	return Add(x, layers.LinearW(w, p+"mlp.down_proj", a, false))
}

// The parts of one decoder layer, so that inference can run the decoder as three graphs per
// layer with the softmax and SiLU on the host between them (tinyllava's host-kernel path):
//
//	scores, k, v    = AttentionScores(x)      softmax(scores) over keys <= query = p
//	x1, gate, up    = PostAttention(x, p, v)  silu(gate) * up = a
//	x2              = MLPOut(x1, a)
//
// Forward computes the same functions in one graph (without a cache or at prefill).

// AttentionScores runs layer p's first part on x [B, L, hidden] with Rotary's cos and sin: the
// scores [B, KVH, G*L, L] (or [B, KVH, G, L, L] with bias, see layers.AttentionScoresBias) of
// the L queries against the L keys, and the keys (after RoPE) and values [B, L, KVH, head dim].
// The causal mask is the caller's to apply; bias (nil: none) carries any other.
func AttentionScores(w layers.Weights, p string, c Config, x, cos, sin, bias *Node) (scores, k, v *Node) {
	qkv := layers.RowBlocks(func(in []*Node) []*Node { return projectQKV(w, p, c, in[0], in[1], in[2]) }, x, cos, sin)
	return layers.AttentionScoresBias(qkv[0], qkv[1], bias), qkv[1], qkv[2]
}

// PostAttention runs layer p's second part: the attention output from the weights probs and v,
// o_proj and the residual (x1), and the MLP's gate and up projections (gate before the SiLU).
func PostAttention(w layers.Weights, p string, c Config, x, probs, v *Node) (x1, gate, up *Node) {
	o := layers.AttentionValues(probs, v, c.NumAttentionHeads)
	out := layers.RowBlocks(func(in []*Node) []*Node {
		x1, h := postAttention(w, p, c, in[0], in[1])
		return []*Node{x1, layers.LinearW(w, p+"mlp.gate_proj", h, false), layers.LinearW(w, p+"mlp.up_proj", h, false)}
	}, x, o)
	return out[0], out[1], out[2]
}

// MLPOut runs layer p's last part: x1 + down_proj(a).
func MLPOut(w layers.Weights, p string, x1, a *Node) *Node {
	return layers.RowBlocks(func(in []*Node) []*Node { return []*Node{mlpOut(w, p, in[0], in[1])} }, x1, a)[0]
}

// attend runs the attention of one layer over q [B, L, H, D] and the new keys and values
// [B, L, KVH, D], through the cache when there is one (kCache nil at prefill), and returns
// its output [B, L, H, D] and, with a cache, the layer's updated keys and values.
func attend(q, k, v, bias, kCache, vCache *Node, cache *Cache) (out, kAll, vAll *Node) {
	l := q.Shape().Dimensions[1]
	switch {
	case cache == nil:
	case kCache == nil: // prefill: keys and values go to the front of a fresh cache
		kAll, vAll = GrowRight(k, 1, cache.Len-l, 0), GrowRight(v, 1, cache.Len-l, 0)
	default: // one token per row, written at cache.Pos
		if l != 1 {
			panic(fmt.Sprintf("qwen2: cached decoding takes one token per row, got %d", l))
		}
		at := Equal(Iota(q.Graph(), shapes.Make(cache.Pos.DType(), 1, cache.Len, 1, 1), 1), cache.Pos)
		at = BroadcastToDims(at, kCache.Shape().Dimensions...)
		kAll = Where(at, BroadcastToDims(k, kCache.Shape().Dimensions...), kCache)
		vAll = Where(at, BroadcastToDims(v, vCache.Shape().Dimensions...), vCache)
		k, v = kAll, vAll
	}
	// Without a cache and at prefill the L queries are the L keys under a causal mask; a
	// decoding step's one query reads the whole cache.
	return layers.Attention(q, k, v, bias, kCache == nil), kAll, vAll
}

// LMHead projects hidden states [..., hidden] to logits [..., vocab] with lm_head, or with the
// embedding table when the embeddings are tied.
func LMHead(w layers.Weights, prefix string, c Config, hidden *Node) *Node {
	name := prefix + "lm_head.weight"
	if c.TieWordEmbeddings {
		name = prefix + "model.embed_tokens.weight"
	}
	return layers.Linear(hidden, w(name), nil)
}
