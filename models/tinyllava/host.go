package tinyllava

import (
	"errors"
	"fmt"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/models/hostops"
	"github.com/switchkd/switchkd/models/layers"
	"github.com/switchkd/switchkd/models/qwen2"
	"github.com/switchkd/switchkd/models/siglip"
)

// The host-kernel inference path. On the pure-Go backend the attention softmax, SigLIP's GELU and
// Qwen2's SiLU are a fifth of a TinyLLaVA prefill's work, computed by the backend one float64
// math.Exp or math.Tanh at a time, mostly on one core. Inference therefore runs the model as
// graphs per layer part (one compiled set per part, reused with each layer's weights) and does
// those in place on the host with hostops' vector kernels, on the buffers the backend shares:
//
//	vision:  x = embeddings(pixels)
//	         per layer: scores, v = A(x); softmax(scores); x1, h = B(x, scores, v); gelu(h); x = C(x1, h)
//	decoder: x = embed(ids, connector(select(x)))
//	         per layer: scores, k, v = A(x); causal softmax(scores); x1, g, u = B(x, scores, v);
//	                    g = silu(g) * u; x = C(x1, g)
//
// and the caller's graph takes x (final norm, LM head, cross-entropy). Training keeps one graph:
// it needs the gradients through all of it.

// hostKernelsDefault reports whether a model on this backend uses the host-kernel path: a
// backend whose buffers are host memory, the pure-Go one, and a build and CPU with the vector
// kernels.
func hostKernelsDefault(m *Model) bool {
	return m.Backend.String() == "go" && m.Backend.HasSharedBuffers() && hostops.Vector()
}

// hostActivation reports whether the host kernels have the tower's activation (otherwise it
// stays in the graph).
func hostActivation(act string) bool { return act == "gelu_pytorch_tanh" || act == "gelu_new" }

var (
	visionEmbedNames = []string{"patch_embedding.weight", "patch_embedding.bias", "position_embedding.weight"}
	visionANames     = []string{"layer_norm1.weight", "layer_norm1.bias", "self_attn.q_proj.weight", "self_attn.q_proj.bias",
		"self_attn.k_proj.weight", "self_attn.k_proj.bias", "self_attn.v_proj.weight", "self_attn.v_proj.bias"}
	visionBNames = []string{"self_attn.out_proj.weight", "self_attn.out_proj.bias", "layer_norm2.weight", "layer_norm2.bias",
		"mlp.fc1.weight", "mlp.fc1.bias"}
	visionCNames = []string{"mlp.fc2.weight", "mlp.fc2.bias"}
)

// segment returns the cached executor named key of one part of the model: fn gets the weights
// named prefix+names (graph inputs, in this order) and the other inputs.
func (m *Model) segment(key string, prefix string, names []string, fn func(w layers.Weights, in []*Node) []*Node) (*Exec, error) {
	return m.exec(key, func() (*Exec, error) {
		full := make([]string, len(names))
		for i, s := range names {
			full[i] = prefix + s
		}
		return NewExec(m.Backend, func(in []*Node) []*Node {
			return fn(Weights(full, in[:len(names)]), in[len(names):])
		})
	})
}

// weightArgs returns the tensors prefix+names.
func (m *Model) weightArgs(prefix string, names []string, rest ...any) []any {
	args := make([]any, 0, len(names)+len(rest))
	for _, s := range names {
		args = append(args, m.Params.T[prefix+s])
	}
	return append(args, rest...)
}

// visionHost runs the tower over pixels [N, C, S, S] as described above and returns
// hidden_states[vision_feature_layer] [N, patches, vision hidden] (before the select strategy).
func (m *Model) visionHost(pixels *tensors.Tensor) (*tensors.Tensor, error) {
	c := m.Config
	vc := c.Vision
	numLayers, err := vc.LayersNeeded(c.VisionFeatureLayer)
	if err != nil {
		return nil, err
	}
	embPrefix := VisionPrefix + "vision_model.embeddings."
	l0 := siglip.LayerPrefix(VisionPrefix, 0)
	emb, err := m.segment("vision/embed", embPrefix, visionEmbedNames, func(w layers.Weights, in []*Node) []*Node {
		return []*Node{siglip.Embeddings(w, VisionPrefix, vc, in[0])}
	})
	if err != nil {
		return nil, err
	}
	segA, err := m.segment("vision/attn", l0, visionANames, func(w layers.Weights, in []*Node) []*Node {
		s, v := siglip.AttentionScores(w, l0, vc, in[0])
		return []*Node{s, v}
	})
	if err != nil {
		return nil, err
	}
	segB, err := m.segment("vision/post", l0, visionBNames, func(w layers.Weights, in []*Node) []*Node {
		x1, h := siglip.PostAttention(w, l0, vc, in[0], in[1], in[2])
		return []*Node{x1, h}
	})
	if err != nil {
		return nil, err
	}
	hostAct := hostActivation(vc.HiddenAct) // otherwise the activation stays in the graph
	segC, err := m.segment(fmt.Sprintf("vision/mlp/hostact=%v", hostAct), l0, visionCNames, func(w layers.Weights, in []*Node) []*Node {
		a := in[1]
		if !hostAct {
			a = siglip.Activate(vc.HiddenAct, a)
		}
		return []*Node{siglip.MLPOut(w, l0, in[0], a)}
	})
	if err != nil {
		return nil, err
	}
	run := runner("vision tower")
	out, err := run(emb, m.weightArgs(embPrefix, visionEmbedNames, pixels))
	if err != nil {
		return nil, err
	}
	x := out[0]
	for i := range numLayers {
		l := siglip.LayerPrefix(VisionPrefix, i)
		out, err := run(segA, m.weightArgs(l, visionANames, x))
		if err != nil {
			return nil, err
		}
		scores, v := out[0], out[1]
		if err := inPlace(scores, func(f []float32) { hostops.SoftmaxRows(f, scores.Shape().Dimensions[3]) }); err != nil {
			return nil, err
		}
		out, err = run(segB, m.weightArgs(l, visionBNames, x, scores, v), x, scores, v)
		if err != nil {
			return nil, err
		}
		x1, h := out[0], out[1]
		if hostAct {
			if err := inPlace(h, hostops.GeluTanh); err != nil {
				return nil, err
			}
		}
		out, err = run(segC, m.weightArgs(l, visionCNames, x1, h), x1, h)
		if err != nil {
			return nil, err
		}
		x = out[0]
	}
	return x, nil
}

// runner returns a function that executes e on args, then frees the tensors free (the inputs
// no later part reads), naming what in errors.
func runner(what string) func(e *Exec, args []any, free ...*tensors.Tensor) ([]*tensors.Tensor, error) {
	return func(e *Exec, args []any, free ...*tensors.Tensor) ([]*tensors.Tensor, error) {
		out, err := e.Exec(args...)
		for _, t := range free {
			t.FinalizeAll()
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return out, nil
	}
}

var (
	llmANames = []string{"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.q_proj.bias",
		"self_attn.k_proj.weight", "self_attn.k_proj.bias", "self_attn.v_proj.weight", "self_attn.v_proj.bias"}
	llmBNames = []string{"self_attn.o_proj.weight", "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight"}
	llmCNames = []string{"mlp.down_proj.weight"}
)

// hostHidden runs b through the model with the host kernels up to the decoder's last layer and
// returns its output [B, L, hidden] (before the final norm). With cacheLen > 0 (a generation
// prefill) mask [B, L, 1, cacheLen] (flat; true = may attend; nil: none) masks the attention
// besides causality, and it also returns every layer's keys and values [B, cacheLen, KVH, head
// dim] (the first L written), the KV cache.
func (m *Model) hostHidden(b *Batch, mask []bool, cacheLen int) (x *tensors.Tensor, ks, vs []*tensors.Tensor, err error) {
	c := m.Config
	tc := c.Text
	np := len(m.Params.Used)
	args := append(m.ParamArgs(), b.Args(c)...)
	hasImg := b.NumImages > 0
	if hasImg {
		tower, err := m.visionHost(args[np].(*tensors.Tensor))
		if err != nil {
			return nil, nil, nil, err
		}
		args[np] = tower
		defer tower.FinalizeAll()
	}
	embed, err := m.exec(fmt.Sprintf("llm/embed/img=%v", hasImg), func() (*Exec, error) {
		return NewExec(m.Backend, func(in []*Node) *Node {
			w := Weights(m.Params.Used, in[:np])
			bn, _ := batchInputs(in[np:], hasImg, true)
			var imgEmb *Node
			if f := c.ImageFeatures(w, bn); f != nil {
				imgEmb = c.Project(w, f)
			}
			return c.Embed(w, bn.IDs, bn.ImageSel, bn.IsImage, imgEmb)
		})
	})
	if err != nil {
		return nil, nil, nil, err
	}
	run := runner("language model")
	out, err := run(embed, args)
	if err != nil {
		return nil, nil, nil, err
	}
	x = out[0]
	positions := args[len(args)-1]
	l0 := qwen2.LayerPrefix(LLMPrefix, 0)
	L := b.L
	// The keys j <= i query i of row r may not attend, for the host softmax (cacheLen > 0: the
	// mask's stride).
	var masked [][]int32
	if mask != nil {
		masked = make([][]int32, b.B*L)
		for r := range b.B {
			for i := range L {
				for j := 0; j <= i; j++ {
					if !mask[(r*L+i)*cacheLen+j] {
						masked[r*L+i] = append(masked[r*L+i], int32(j))
					}
				}
			}
		}
	}
	segA, err := m.segment(fmt.Sprintf("llm/attn/cache=%d", cacheLen), l0, llmANames, func(w layers.Weights, in []*Node) []*Node {
		cos, sin := qwen2.Rotary(tc, in[1])
		s, k, v := qwen2.AttentionScores(w, l0, tc, in[0], cos, sin, nil)
		if cacheLen == 0 {
			return []*Node{s, v}
		}
		l := k.Shape().Dimensions[1]
		return []*Node{s, v, GrowRight(k, 1, cacheLen-l, 0), GrowRight(v, 1, cacheLen-l, 0)}
	})
	if err != nil {
		return nil, nil, nil, err
	}
	segB, err := m.segment("llm/post", l0, llmBNames, func(w layers.Weights, in []*Node) []*Node {
		x1, g, u := qwen2.PostAttention(w, l0, tc, in[0], in[1], in[2])
		return []*Node{x1, g, u}
	})
	if err != nil {
		return nil, nil, nil, err
	}
	segC, err := m.segment("llm/mlp", l0, llmCNames, func(w layers.Weights, in []*Node) []*Node {
		return []*Node{qwen2.MLPOut(w, l0, in[0], in[1])}
	})
	if err != nil {
		return nil, nil, nil, err
	}
	for i := range tc.NumHiddenLayers {
		l := qwen2.LayerPrefix(LLMPrefix, i)
		out, err := run(segA, m.weightArgs(l, llmANames, x, positions))
		if err != nil {
			return nil, nil, nil, err
		}
		scores, v := out[0], out[1]
		if cacheLen > 0 {
			ks, vs = append(ks, out[2]), append(vs, out[3])
		}
		perBatch := scores.Shape().Size() / (b.B * L) // KVH*G*L rows of L per batch row
		if err := inPlace(scores, func(f []float32) { hostops.CausalSoftmaxRowsMasked(f, L, perBatch, masked) }); err != nil {
			return nil, nil, nil, err
		}
		out, err = run(segB, m.weightArgs(l, llmBNames, x, scores, v), x, scores, v)
		if err != nil {
			return nil, nil, nil, err
		}
		x1, g, u := out[0], out[1], out[2]
		var uerr error
		err = inPlace(g, func(gf []float32) {
			uerr = inPlace(u, func(uf []float32) { hostops.SiLUMul(gf, uf) })
		})
		u.FinalizeAll()
		if err = errors.Join(err, uerr); err != nil {
			return nil, nil, nil, err
		}
		out, err = run(segC, m.weightArgs(l, llmCNames, x1, g), x1, g)
		if err != nil {
			return nil, nil, nil, err
		}
		x = out[0]
	}
	return x, ks, vs, nil
}

// inPlace runs fn on a float32 tensor's values in the backend's own buffer (the go backend's
// buffers are host memory: no copy), while no execution reads it.
func inPlace(t *tensors.Tensor, fn func([]float32)) error {
	if t.IsLocal() || !(t.IsShared() || t.IsOnDevice(0)) {
		return fmt.Errorf("host kernels: tensor %s is not the backend's shared buffer", t.Shape())
	}
	return tensors.ConstFlatData(t, fn)
}
