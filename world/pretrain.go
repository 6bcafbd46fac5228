package world

import (
	"fmt"
	"math/rand/v2"
)

// SplitPretrain names the scenes PretrainScenes draws.
const SplitPretrain = "pretrain"

// PretrainScenes draws n scenes of cfg's world for pre-training a vision tower on the scenes'
// ground truth (the demo's analog of SigLIP's own pre-training corpus): the same objects, sizes,
// colours, popularity weights and characters (with probability cfg.CharProb) as the world, from
// an independent random stream, with no questions, and none equal in content to a scene of m
// (when m is not nil), so pre-training never sees a validation or test scene. The images are
// not written; RenderScene draws them.
func PretrainScenes(cfg Config, n int, m *Manifest) ([]*Scene, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("world: %d pre-training scenes", n)
	}
	sg := newSceneGen(cfg) // the world's combo weights
	sg.rng = rand.New(rand.NewPCG(cfg.Seed, 0x5052455452000005))
	noise := rand.New(rand.NewPCG(cfg.Seed, 0x5052455452000006))
	if m != nil {
		for _, s := range m.Scenes() {
			sg.seen[s.key()] = true
		}
	}
	out := make([]*Scene, 0, n)
	for i := 0; i < n; i++ {
		s, err := sg.scene(SplitPretrain, i, noise.Uint64(), plan{})
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
