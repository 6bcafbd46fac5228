package engine

import "sync"

// The pure-Go backend runs every op of a graph on a goroutine of its own. A goroutine starts
// with the runtime's starting stack size, 8 KiB unless the runtime has seen bigger stacks: at
// each collection it sets the starting size to the average stack use of the goroutines it
// scanned (GODEBUG adaptivestackstart, on by default), rounded up to a power of two. The
// backend's kernels need more than 8 KiB, so nearly every op grew its stack, copying it, at
// least once: 6% of the CPU time of a small training step (bench-step --preset small,
// runtime.newstack in a CPU profile).
//
// stackBallast parks ballastGoroutines goroutines for the life of the process, each with
// ballastStackUse bytes of stack in use. They hold the scanned average near 14 KiB, so after
// the next collection goroutines start with 16 KiB stacks and the ops no longer grow theirs
// (the step: 0.031 -> 0.029 s, docs/BENCHMARKS.md). The cost is 1 MiB of parked stacks.
const (
	ballastGoroutines = 64
	ballastStackUse   = 14 << 10
)

var ballastOnce sync.Once

// stackBallast starts the parked goroutines, once per process.
func stackBallast() {
	ballastOnce.Do(func() {
		for range ballastGoroutines {
			go parkAtDepth(ballastStackUse / ballastFrame)
		}
	})
}

// ballastFrame is the stack one parkAtDepth frame takes, a little more than its array.
const ballastFrame = 1 << 10

// ballastPark is never closed or sent to: the goroutines stay parked.
var ballastPark = make(chan byte)

// parkAtDepth recurses n frames of about ballastFrame bytes each, then parks.
//
//go:noinline
func parkAtDepth(n int) byte {
	var frame [ballastFrame - 64]byte
	frame[n%len(frame)] = byte(n)
	if n > 0 {
		return parkAtDepth(n-1) + frame[(n*7)%len(frame)]
	}
	return <-ballastPark + frame[0]
}

// StartingStackSize is the runtime's current starting stack size for new goroutines.
func StartingStackSize() uint64 { return uint64Metric("/gc/stack/starting-size:bytes") }
