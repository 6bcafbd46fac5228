package main

import (
	"bytes"
	"encoding/json"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/switchkd/switchkd/engine"
)

// The go backend's default worker pool is bounded, and its op executor deadlocked on the
// training step: `bench-step --preset small --steps 20 --backend go:ops_parallel` hung in 3 of
// 3 runs (killed after 60 s; it normally takes ~3 s). engine.Backend starts the go backend
// with an unbounded pool, with which the op executor runs independent ops concurrently. This
// runs the whole Switch-KD step (teacher, student and switch passes, backward, AdamW) many
// times on the default backend, as a single execution (ops concurrent) and as concurrent
// executions, and fails instead of hanging if one does not finish in time.
func TestParallelExecutorRepeated(t *testing.T) {
	if p, ok := engine.GoParallelism(engine.MustBackend("")); !ok || p != -1 {
		t.Fatalf("default backend's worker pool: got %d (go backend: %v), want unbounded (-1)", p, ok)
	}
	runs := 4
	if testing.Short() {
		runs = 1
	}
	for r := 0; r < runs; r++ {
		for _, batch := range []string{"1", "2"} { // batch 2: two concurrent chunk executions
			done := make(chan string, 1)
			go func() {
				var out, errb bytes.Buffer
				if code := run([]string{"bench-step", "--preset", "small", "--steps", "12", "--batch", batch, "--losses-window", "0"}, &out, &errb); code != 0 {
					done <- "exit code " + strconv.Itoa(code) + ": " + errb.String()
					return
				}
				done <- out.String()
			}()
			select {
			case out := <-done:
				var res map[string]any
				if err := json.Unmarshal([]byte(out), &res); err != nil {
					t.Fatalf("run %d batch %s: bench-step output is not JSON: %v\n%s", r, batch, err, out)
				}
				if s, _ := res["step_s_best"].(float64); !(s > 0) {
					t.Fatalf("run %d batch %s: no step time in %s", r, batch, out)
				}
			case <-time.After(3 * time.Minute):
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				os.Stderr.Write(buf[:n])
				t.Fatalf("run %d batch %s: bench-step did not finish in 3 minutes (executor deadlock?)", r, batch)
			}
		}
	}
}
