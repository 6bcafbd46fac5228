package tinyllava

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// New wraps a configuration and a full set of parameters as a model. Every tensor the
// configuration needs must be present with its shape.
func New(cfg *Config, t map[string]*tensors.Tensor, backend compute.Backend) (*Model, error) {
	want := cfg.Tensors()
	if err := checkShapes("parameters", want, func(n string) ([]int, bool) {
		x, ok := t[n]
		if !ok {
			return nil, false
		}
		return x.Shape().Dimensions, true
	}); err != nil {
		return nil, err
	}
	// Keep one copy of each weight: on the backend (shared with the host for the go backend),
	// not a host copy plus a device copy.
	for n, x := range t {
		if err := x.ToDevice(backend, 0); err != nil {
			return nil, fmt.Errorf("moving %s to the backend: %w", n, err)
		}
	}
	p := &Params{T: t}
	for n := range want {
		p.Used = append(p.Used, n)
	}
	sort.Strings(p.Used)
	m := &Model{Config: cfg, Params: p, Backend: backend, execs: map[string]*graph.Exec{}}
	m.HostKernels = hostKernelsDefault(m)
	return m, nil
}

// RandomParams initialises every tensor of cfg as transformers does for training from scratch:
// weights ~ N(0, std), biases 0, norm weights 1 (norm biases 0).
func RandomParams(cfg *Config, std float64, seed uint64) map[string]*tensors.Tensor {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	want := cfg.Tensors()
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names) // deterministic draw order
	out := make(map[string]*tensors.Tensor, len(names))
	for _, n := range names {
		dims := want[n]
		size := 1
		for _, d := range dims {
			size *= d
		}
		v := make([]float32, size)
		switch {
		case strings.Contains(n, "norm") && strings.HasSuffix(n, ".weight"):
			for i := range v {
				v[i] = 1
			}
		case strings.HasSuffix(n, ".bias"):
		default:
			s := std
			if strings.Contains(n, "position_embedding") {
				s = 1 / math.Sqrt(float64(dims[len(dims)-1]))
			}
			for i := range v {
				v[i] = float32(rng.NormFloat64() * s)
			}
		}
		out[n] = tensors.FromFlatDataAndDimensions(v, dims...)
	}
	return out
}
