// Package engine hides the choice of GoMLX backend from the rest of switchkd.
//
// The pure-Go backend is the default; XLA (CUDA, TPU, CPU via PJRT) is a configuration choice
// for users who build with cgo and have a PJRT plugin installed.
package engine

import (
	"fmt"
	"os"
	"reflect"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend" // registers the "go" backend
)

// DefaultBackend is the backend configuration used when none is given: the pure-Go backend,
// which runs independent ops of a graph concurrently when it is the only execution in flight
// (and one after another when several are), with an unbounded worker pool (see Backend).
const DefaultBackend = "go"

var (
	mu       sync.Mutex
	backends = map[string]compute.Backend{}
)

// Backend returns a (cached) backend for the given configuration: "go", "go:<options>",
// "xla", "xla:cuda", ... An empty name means DefaultBackend.
//
// The go backend is started with an unbounded worker pool unless its options say
// "parallelism=N". Its default pool is bounded (2 x GOMAXPROCS) and shared by the op executor
// and the kernels inside ops: when every slot held an op (a matmul) waiting for a slot for its
// own kernel workers, execution deadlocked ("all goroutines are asleep", or a silent hang:
// `bench-step --preset small --backend go:ops_parallel` hung 3 runs of 3). Unbounded, a task
// never waits for a slot, so the executor cannot starve its ops' kernels; the Go scheduler
// multiplexes the goroutines on GOMAXPROCS threads (TestParallelExecutorRepeated).
func Backend(name string) (compute.Backend, error) {
	if name == "" {
		name = DefaultBackend
	}
	mu.Lock()
	defer mu.Unlock()
	if b, ok := backends[name]; ok {
		return b, nil
	}
	backendName, opts, _ := strings.Cut(name, ":")
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
	if backendName == "go" && !strings.Contains(opts, "parallelism=") {
		if err := setGoParallelism(b, -1); err != nil {
			return nil, fmt.Errorf("starting backend %q: %w", name, err)
		}
	}
	if backendName == "go" {
		stackBallast()
	}
	backends[name] = b
	return b, nil
}

// setGoParallelism sets the go backend's worker-pool bound (-1: unbounded). The backend's
// "parallelism=N" option does the same but prints a line on stdout, which would corrupt the
// JSON lines switchkd's commands print there; the pool is reached through its exported field
// and method instead (GoMLX compute v0.1.3's Backend.Workers.SetMaxParallelism).
func setGoParallelism(b compute.Backend, n int) error {
	set, ok := goWorkersMethod(b, "SetMaxParallelism")
	if !ok {
		return fmt.Errorf("the go backend (%T) has no Workers.SetMaxParallelism: the GoMLX compute version changed; "+
			"pass --backend go:ops_sequential", b)
	}
	set.Call([]reflect.Value{reflect.ValueOf(n)})
	return nil
}

// GoParallelism reports the go backend's worker-pool bound (-1: unbounded), and false for
// other backends.
func GoParallelism(b compute.Backend) (int, bool) {
	get, ok := goWorkersMethod(b, "MaxParallelism")
	if !ok {
		return 0, false
	}
	return int(get.Call(nil)[0].Int()), true
}

// goWorkersMethod finds the named method of the go backend's exported Workers pool.
func goWorkersMethod(b compute.Backend, name string) (reflect.Value, bool) {
	v := reflect.ValueOf(b)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	w := v.FieldByName("Workers")
	if !w.IsValid() || !w.CanInterface() {
		return reflect.Value{}, false
	}
	m := w.MethodByName(name)
	return m, m.IsValid()
}

// MustBackend is Backend for tests and tools: it panics on error.
func MustBackend(name string) compute.Backend {
	b, err := Backend(name)
	if err != nil {
		panic(err)
	}
	return b
}

// TuneGC sets the Go garbage collector's target (unless GOGC is set) for processes that hold
// model weights. The pure-Go backend keeps weights and activations on the Go heap; with the
// default GOGC=100 the heap may grow to twice the live weights before a collection, so peak RSS
// would be ~2x the float32 weight size. After every collection the target is set so that the
// next one starts once the heap has grown by 10% of the live heap or gcFloor, whichever is
// more: big models keep peak RSS near 1.1x their weights (the weights are pointer-free buffers,
// so collections stay cheap), and small ones (tests, the demo's models, a few MB of live heap)
// are not collected every few steps.
func TuneGC() {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	debug.SetGCPercent(gcPercent(liveHeap()))
	armGCTuner()
}

// gcFloor is the least heap growth between two collections under TuneGC.
const gcFloor = 256 << 20

// gcPercent is GOGC for a live heap of live bytes: growth max(10%, gcFloor), at most 1000%.
func gcPercent(live uint64) int {
	if live == 0 {
		return 1000
	}
	return int(min(1000, max(10, gcFloor*100/live)))
}

// liveHeap is the heap marked live by the last collection. (Its own sample each call: the tuner
// reads it on the finalizer goroutine.)
func liveHeap() uint64 { return uint64Metric("/gc/heap/live:bytes") }

// uint64Metric reads one runtime/metrics value of kind uint64 (0 if the runtime lacks it).
func uint64Metric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// armGCTuner re-targets the collector after the next collection, and again after each one: a
// finalizer runs once per cycle that finds its object unreachable.
func armGCTuner() {
	s := new(gcSentinel)
	runtime.SetFinalizer(s, func(*gcSentinel) {
		debug.SetGCPercent(gcPercent(liveHeap()))
		armGCTuner()
	})
}

type gcSentinel struct{ _ [16]byte } // not zero-sized: those may share an address and never be freed
