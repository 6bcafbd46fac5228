package engine

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestGCPercent(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 1000},
		{1 << 20, 1000},  // 1 MiB: capped
		{64 << 20, 400},  // 64 MiB: 256 MiB of growth
		{1 << 30, 25},    // 1 GiB
		{2560 << 20, 10}, // 2.5 GiB: 10% is the floor's 256 MiB
		{8 << 30, 10},    // 8 GiB: 10%
	} {
		if got := gcPercent(c.live); got != c.want {
			t.Errorf("gcPercent(%d MiB) = %d, want %d", c.live>>20, got, c.want)
		}
	}
}

// After a collection, the tuner must have set GOGC from the live heap: here a test binary's
// few MiB, so the cap.
func TestTuneGCRetargetsAfterCollections(t *testing.T) {
	t.Setenv("GOGC", "")
	if err := os.Unsetenv("GOGC"); err != nil {
		t.Fatal(err)
	}
	old := debug.SetGCPercent(37)
	defer debug.SetGCPercent(old)
	TuneGC()
	debug.SetGCPercent(37) // the tuner, not this call, must set it after the next cycle
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // finalizers run on their own goroutine
		p := debug.SetGCPercent(37)
		if p == gcPercent(liveHeap()) && p != 37 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC is %d after collections, want %d", p, gcPercent(liveHeap()))
		}
	}
}

// Once a go backend exists, the parked goroutines of stackBallast must lift the runtime's
// starting stack size above the 8 KiB default after a collection (the runtime recomputes it
// from the stacks it scans).
func TestStackBallastRaisesStartingStack(t *testing.T) {
	MustBackend("go")
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		if s := StartingStackSize(); s >= 16<<10 {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("starting stack size is %d bytes after collections, want at least 16 KiB", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
