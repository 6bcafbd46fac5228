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
		name  string
		shape testShape
	}{
		{"demo", testShape{vocab: 1000, hidden: 128, inter: 320, layers: 3, heads: 4, kvHeads: 2,
			vHidden: 64, vInter: 256, vLayers: 5, vHeads: 4, image: 64, patch: 8, tied: true}},
		{"mid", testShape{vocab: 1000, hidden: 512, inter: 1536, layers: 4, heads: 4, kvHeads: 2,
			vHidden: 256, vInter: 1024, vLayers: 5, vHeads: 4, image: 224, patch: 16, tied: true}},
	} {
		c := testConfig(b, sz.shape)
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
