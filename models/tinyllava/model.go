package tinyllava

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/switchkd/switchkd/models/layers"
	"github.com/switchkd/switchkd/safetensors"
)

// Model is a loaded TinyLLaVA checkpoint on a backend.
type Model struct {
	Dir     string
	Config  *Config
	Params  *Params
	Backend compute.Backend
	// HostKernels runs inference as graphs per layer part with the softmax and activations on
	// the host between them (host.go). New sets it where that is faster: the go backend with
	// vector kernels.
	HostKernels bool

	mu    sync.Mutex
	execs map[string]*graph.Exec
}

// Params holds a model's tensors by checkpoint name. Used lists, sorted, the tensors the
// forward pass reads (the graph inputs, in this order); the rest (e.g. SigLIP's unused
// post_layernorm and head) are kept only so a saved model carries them.
type Params struct {
	T    map[string]*tensors.Tensor
	Used []string
}

// Weights maps graph inputs, given in the order of names, to a layers.Weights accessor.
func Weights(names []string, nodes []*graph.Node) layers.Weights {
	idx := make(map[string]*graph.Node, len(names))
	for i, n := range names {
		idx[n] = nodes[i]
	}
	return func(name string) *graph.Node {
		n, ok := idx[name]
		if !ok {
			panic(fmt.Sprintf("tinyllava: tensor %q is not among the graph's weights", name))
		}
		return n
	}
}

// Load reads config.json and the safetensors weights (single file or sharded) from dir,
// checks every tensor the model needs for presence and shape, and converts them to float32.
func Load(dir string, backend compute.Backend) (*Model, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	ar, err := safetensors.Open(dir)
	if err != nil {
		return nil, err
	}
	defer ar.Close()
	if !cfg.TieExplicit {
		_, hasHead := ar.Info(LLMPrefix + "lm_head.weight")
		cfg.Text.TieWordEmbeddings = !hasHead
	}
	want := cfg.Tensors()
	if err := checkShapes(dir, want, func(n string) ([]int, bool) {
		info, ok := ar.Info(n)
		if ok && !info.DType.IsFloat() {
			return nil, false
		}
		return info.Shape, ok
	}); err != nil {
		return nil, err
	}
	p := &Params{T: map[string]*tensors.Tensor{}}
	for _, name := range ar.Names() {
		info, _ := ar.Info(name)
		if !info.DType.IsFloat() {
			continue // not a weight switchkd uses (e.g. an int buffer): nothing to carry
		}
		// Convert straight into the backend's (shared, for the go backend) buffer: one float32
		// copy of the weights in memory, the mapped file pages released tensor by tensor.
		t, err := tensors.FromShapeForBackend(backend, 0, shapes.Make(dtypes.Float32, info.Shape...))
		if err != nil {
			return nil, err
		}
		var rerr error
		if err := tensors.MutableFlatData(t, func(flat []float32) { rerr = ar.ReadFloat32Into(name, flat) }); err != nil {
			return nil, err
		}
		if rerr != nil {
			return nil, rerr
		}
		p.T[name] = t
	}
	m, err := New(cfg, p.T, backend)
	if err != nil {
		return nil, err
	}
	m.Dir = dir
	return m, nil
}

// checkShapes lists every missing tensor by name, and the first wrong shape with the expected
// and found shapes. lookup returns a tensor's shape, or false when it is absent (or not a
// float tensor).
func checkShapes(where string, want map[string][]int, lookup func(string) ([]int, bool)) error {
	var missing []string
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		shape, ok := lookup(n)
		if !ok {
			missing = append(missing, n)
			continue
		}
		if !slices.Equal(shape, want[n]) {
			return fmt.Errorf("%s: tensor %s has shape %v, config.json implies %v", where, n, shape, want[n])
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: %d tensor(s) missing: %s", where, len(missing), strings.Join(missing, ", "))
	}
	return nil
}

// exec returns the cached executor named key, building it with build on first use.
func (m *Model) exec(key string, build func() (*graph.Exec, error)) (*graph.Exec, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.execs[key]; ok {
		return e, nil
	}
	e, err := build()
	if err != nil {
		return nil, err
	}
	m.execs[key] = e
	return e, nil
}

// ParamArgs returns the used parameters in graph-input order.
func (m *Model) ParamArgs() []any {
	args := make([]any, len(m.Params.Used))
	for i, n := range m.Params.Used {
		args[i] = m.Params.T[n]
	}
	return args
}

// Args returns the batch's tensors in BatchNodes order (Pixels only when present), as
// BatchInputs expects them.
func (b *Batch) Args(c *Config) []any {
	var a []any
	if b.NumImages > 0 {
		s := c.Vision.ImageSize
		a = append(a, tensors.FromFlatDataAndDimensions(b.Pixels, b.NumImages, c.Vision.NumChannels, s, s))
	}
	return append(a,
		tensors.FromFlatDataAndDimensions(b.IDs, b.B, b.L),
		tensors.FromFlatDataAndDimensions(b.ImageSel, b.B, b.L),
		tensors.FromFlatDataAndDimensions(b.IsImage, b.B, b.L),
		tensors.FromFlatDataAndDimensions(b.Positions, b.B, b.L))
}

// inferenceFront prepares b for an inference graph: its arguments (the used parameters, then
// the batch's tensors), the graph variant's key suffix, and the function that gives, inside the
// graph, the weights, the decoder's final hidden states [B, L, hidden] and the remaining inputs.
// With HostKernels the model runs up to the decoder's last layer outside (hostHidden), and the
// graph takes that output instead of the batch.
func (m *Model) inferenceFront(b *Batch) (args []any, variant string, front func(in []*graph.Node) (layers.Weights, *graph.Node, []*graph.Node), err error) {
	c := m.Config
	np := len(m.Params.Used)
	if m.HostKernels {
		x, _, _, err := m.hostHidden(b, nil, 0)
		if err != nil {
			return nil, "", nil, err
		}
		front = func(in []*graph.Node) (layers.Weights, *graph.Node, []*graph.Node) {
			w := Weights(m.Params.Used, in[:np])
			return w, c.FinalNorm(w, in[np]), in[np+1:]
		}
		return append(m.ParamArgs(), x), "host", front, nil
	}
	front = func(in []*graph.Node) (layers.Weights, *graph.Node, []*graph.Node) {
		w := Weights(m.Params.Used, in[:np])
		bn, rest := BatchInputs(in[np:], b.NumImages > 0)
		return w, c.Hidden(w, bn), rest
	}
	return append(m.ParamArgs(), b.Args(c)...), fmt.Sprintf("img=%v", b.NumImages > 0), front, nil
}

// BatchInputs splits graph inputs laid out by Batch.args back into BatchNodes.
func BatchInputs(in []*graph.Node, hasImages bool) (BatchNodes, []*graph.Node) {
	return batchInputs(in, hasImages, false)
}

// batchInputs is BatchInputs where the first input may be the vision tower's output instead of
// the pixels (features).
func batchInputs(in []*graph.Node, hasImages, features bool) (BatchNodes, []*graph.Node) {
	var b BatchNodes
	switch {
	case hasImages && features:
		b.TowerOut, in = in[0], in[1:]
	case hasImages:
		b.Pixels, in = in[0], in[1:]
	}
	b.IDs, b.ImageSel, b.IsImage, b.Positions = in[0], in[1], in[2], in[3]
	return b, in[4:]
}
