// Package engine hides the choice of GoMLX backend from the rest of switchkd.
//
// The pure-Go backend is the default; XLA (CUDA, TPU, CPU via PJRT) is a configuration choice
// for users who build with cgo and have a PJRT plugin installed.
package engine

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend" // registers the "go" backend
)

// DefaultBackend is the backend configuration used when none is given.
//
// ops_sequential: the go backend's parallel op executor was seen to deadlock on transformer
// forward+backward graphs; sequential op execution (with parallel matmul kernels inside each op)
// never did. See docs/BENCHMARKS.md.
const DefaultBackend = "go:ops_sequential"

var (
	mu       sync.Mutex
	backends = map[string]compute.Backend{}
)

// Backend returns a (cached) backend for the given configuration: "go", "go:<options>",
// "xla", "xla:cuda", ... An empty name means DefaultBackend.
func Backend(name string) (compute.Backend, error) {
	if name == "" {
		name = DefaultBackend
	}
	if name == "go" {
		name = DefaultBackend
	}
	mu.Lock()
	defer mu.Unlock()
	if b, ok := backends[name]; ok {
		return b, nil
	}
	backendName, _, _ := strings.Cut(name, ":")
	known := compute.List()
	found := false
	for _, k := range known {
		if k == backendName {
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("backend %q is not compiled into this binary (available: %s); "+
			"the XLA backend needs a cgo build without the noxla tag and a PJRT plugin", backendName, strings.Join(known, ", "))
	}
	b, err := compute.NewWithConfig(name)
	if err != nil {
		return nil, fmt.Errorf("starting backend %q: %w", name, err)
	}
	backends[name] = b
	return b, nil
}

// MustBackend is Backend for tests and tools: it panics on error.
func MustBackend(name string) compute.Backend {
	b, err := Backend(name)
	if err != nil {
		panic(err)
	}
	return b
}

// TuneGC lowers the Go garbage collector's target (unless GOGC is set) for processes that hold
// model weights. The pure-Go backend keeps weights and activations on the Go heap; with the
// default GOGC=100 the heap may grow to twice the live weights before a collection, so peak RSS
// would be ~2x the float32 weight size. The weights are pointer-free buffers, so collections
// stay cheap at a low percentage.
func TuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(10)
	}
}
