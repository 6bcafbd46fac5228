package tinyllava

import (
	. "github.com/gomlx/gomlx/core/graph"

	"github.com/switchkd/switchkd/models/connector"
	"github.com/switchkd/switchkd/models/layers"
	"github.com/switchkd/switchkd/models/qwen2"
	"github.com/switchkd/switchkd/models/siglip"
)

// The graph-level parts of TinyLLaVA. Each takes the weights accessor of the model whose part
// it runs, so parts of two models can be chained: the visual switch runs the student's
// VisionFeatures into the teacher's Project and LLM.

// VisionFeatures runs the vision tower on pixels [N, C, S, S] and returns the selected features
// [N, NumImageFeatures, vision hidden]: hidden_states[vision_feature_layer], without token 0
// under the "patch" strategy.
func (c *Config) VisionFeatures(w layers.Weights, pixels *Node) *Node {
	n, _ := c.Vision.LayersNeeded(c.VisionFeatureLayer)
	return c.SelectFeatures(siglip.Forward(w, VisionPrefix, c.Vision, pixels, n))
}

// SelectFeatures applies the select strategy to the vision tower's output [N, patches, hidden]:
// "patch" drops token 0.
func (c *Config) SelectFeatures(h *Node) *Node {
	if c.VisionFeatureSelectStrategy == "patch" {
		h = SliceAxis(h, 1, AxisRangeToEnd(1))
	}
	return h
}

// Project maps vision features [..., vision hidden] to LLM embeddings [..., hidden].
func (c *Config) Project(w layers.Weights, features *Node) *Node {
	return connector.Forward(w, c.ConnectorType, features)
}

// Embed builds the spliced input embeddings [B, L, hidden]: token embeddings of ids [B, L],
// replaced where isImage [B, L] is true by row imageSel [B, L] of the flattened image
// embeddings imageEmb [N, F, hidden]. imageEmb may be nil when the batch has no image.
func (c *Config) Embed(w layers.Weights, ids, imageSel, isImage, imageEmb *Node) *Node {
	tok := qwen2.Embed(w, LLMPrefix, ids)
	if imageEmb == nil {
		return tok
	}
	d := imageEmb.Shape().Dimensions
	flat := Reshape(imageEmb, d[0]*d[1], d[2])
	img := Gather(flat, InsertAxes(imageSel, -1))
	cond := BroadcastToDims(InsertAxes(isImage, -1), tok.Shape().Dimensions...)
	return Where(cond, img, tok)
}

// LLM runs the decoder on embeddings [B, L, hidden] at positions [B, L]: final hidden states.
func (c *Config) LLM(w layers.Weights, embeds, positions *Node) *Node {
	h, _ := qwen2.Forward(w, LLMPrefix, c.Text, embeds, positions, nil, nil)
	return h
}

// LLMCached is LLM with a KV cache (see qwen2.Forward).
func (c *Config) LLMCached(w layers.Weights, embeds, positions, mask *Node, cache *qwen2.Cache) (*Node, *qwen2.Cache) {
	return qwen2.Forward(w, LLMPrefix, c.Text, embeds, positions, mask, cache)
}

// FinalNorm is the decoder's final norm, for hidden states computed outside a graph's LLM.
func (c *Config) FinalNorm(w layers.Weights, x *Node) *Node {
	return qwen2.FinalNorm(w, LLMPrefix, c.Text, x)
}

// Logits projects hidden states to vocabulary logits.
func (c *Config) Logits(w layers.Weights, hidden *Node) *Node {
	return qwen2.LMHead(w, LLMPrefix, c.Text, hidden)
}

// BatchNodes are a Batch's tensors inside a graph.
type BatchNodes struct {
	Pixels, IDs, ImageSel, IsImage, Positions *Node // Pixels nil when the batch has no image
	// TowerOut, when set instead of Pixels, is the vision tower's output computed outside the
	// graph (hidden_states[vision_feature_layer], before the select strategy).
	TowerOut *Node
}

// ImageFeatures returns the batch's selected vision features [N, F, vision hidden] (from the
// pixels, or from TowerOut), or nil when the batch has no image.
func (c *Config) ImageFeatures(w layers.Weights, b BatchNodes) *Node {
	switch {
	case b.TowerOut != nil:
		return c.SelectFeatures(b.TowerOut)
	case b.Pixels != nil:
		return c.VisionFeatures(w, b.Pixels)
	}
	return nil
}

// Hidden runs vision tower, connector and LLM over a batch: final hidden states [B, L, hidden].
func (c *Config) Hidden(w layers.Weights, b BatchNodes) *Node {
	return c.HiddenFromFeatures(w, c.ImageFeatures(w, b), b)
}

// HiddenFromFeatures runs this model's connector and LLM over a batch whose vision features
// [N, F, vision hidden] were computed already, possibly by another model's tower (nil when the
// batch has no image): one student tower pass feeds the student and, through the teacher's
// connector and LLM, the visual switch. The features must have the width this model's
// connector expects.
func (c *Config) HiddenFromFeatures(lang layers.Weights, features *Node, b BatchNodes) *Node {
	var imgEmb *Node
	if features != nil {
		imgEmb = c.Project(lang, features)
	}
	return c.LLM(lang, c.Embed(lang, b.IDs, b.ImageSel, b.IsImage, imgEmb), b.Positions)
}

// Differentiable returns a copy of c for graphs that will be differentiated through the model
// (see qwen2.Config.Differentiated).
func (c *Config) Differentiable() *Config {
	d := *c
	d.Text.Differentiated = true
	return &d
}

// CrossEntropy returns per-row -log softmax(logits)[target] for logits [N, V], targets [N]
// (int32), computed with a stable log-sum-exp.
func CrossEntropy(logits, targets *Node) *Node {
	mx := StopGradient(ReduceAndKeep(logits, ReduceMax, -1))
	shifted := Sub(logits, mx)
	lse := Log(ReduceSum(Exp(shifted), -1))
	return Sub(lse, PickColumn(shifted, targets))
}

// PickColumn returns x[i, idx[i]] for x [N, V] and idx [N] (int32): [N].
func PickColumn(x, idx *Node) *Node {
	d := x.Shape().Dimensions
	rows := Iota(x.Graph(), idx.Shape(), 0)
	flatIdx := Add(MulScalar(rows, float64(d[1])), idx)
	return Gather(Reshape(x, d[0]*d[1]), InsertAxes(flatIdx, -1))
}
