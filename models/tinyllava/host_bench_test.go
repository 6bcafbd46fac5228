package tinyllava

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/switchkd/switchkd/engine"
)

// BenchmarkInferencePaths times a batched generation (4 prompts with an image, 8 new tokens) on
// the one-graph path and the host-kernel path, for models of the demo's size, where the host
// path's per-layer executions are not paid back by faster kernels, and larger.
func BenchmarkInferencePaths(b *testing.B) {
	for _, sz := range []struct {
		name                                   string
		vHidden, vInter, vLayers, image, patch int
		hidden, inter, layers                  int
	}{
		{"demo", 64, 256, 4, 64, 8, 128, 320, 3},
		{"mid", 256, 1024, 4, 224, 16, 512, 1536, 4},
	} {
		c, err := ParseConfig([]byte(fmt.Sprintf(`{"model_type":"tinyllava","connector_type":"mlp2x_gelu",
		 "tokenizer_model_max_length":2048,
		 "text_config":{"model_type":"qwen2","vocab_size":1000,"hidden_size":%d,"intermediate_size":%d,
		   "num_hidden_layers":%d,"num_attention_heads":4,"num_key_value_heads":2,"rope_theta":10000,
		   "rms_norm_eps":1e-6,"tie_word_embeddings":true,"max_position_embeddings":2048},
		 "vision_config":{"model_type":"siglip_vision_model","hidden_size":%d,"intermediate_size":%d,
		   "num_hidden_layers":%d,"num_attention_heads":4,"image_size":%d,"patch_size":%d,"layer_norm_eps":1e-6}}`,
			sz.hidden, sz.inter, sz.layers, sz.vHidden, sz.vInter, sz.vLayers+1, sz.image, sz.patch)))
		if err != nil {
			b.Fatal(err)
		}
		m, err := New(c, RandomParams(c, 0.02, 1), engine.MustBackend(""))
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		var inputs []Input
		for i := range 4 {
			ids := []int{ImageTokenIndex}
			for j := 0; j < 20+5*i; j++ {
				ids = append(ids, 1+rng.IntN(900))
			}
			inputs = append(inputs, Input{ID: fmt.Sprint(i), IDs: ids, Images: [][]float32{randomImage(c, rng)}})
		}
		for _, host := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/hostkernels=%v", sz.name, host), func(b *testing.B) {
				m.HostKernels = host
				for b.Loop() {
					if _, err := m.Generate(inputs, GenerateOptions{MaxNewTokens: 8, StopIDs: []int{}}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
