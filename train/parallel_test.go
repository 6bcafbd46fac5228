package train

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestParallelLimitAndErrors(t *testing.T) {
	var running, peak atomic.Int32
	done := make([]bool, 7)
	err := Parallel(len(done), 2, func(k int) error {
		if r := running.Add(1); r > peak.Load() {
			peak.Store(r)
		}
		time.Sleep(5 * time.Millisecond)
		running.Add(-1)
		done[k] = true
		if k == 3 || k == 5 {
			return errors.New("job failed")
		}
		return nil
	})
	if peak.Load() > 2 {
		t.Errorf("%d jobs ran at once, limit 2", peak.Load())
	}
	for k, d := range done {
		if !d {
			t.Errorf("job %d did not run", k)
		}
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 2 {
		t.Errorf("errors %v, want the two failures joined", err)
	}
}

func TestChunks(t *testing.T) {
	for _, c := range []struct {
		n, w int
		want [][2]int
	}{
		{4, 3, [][2]int{{0, 1}, {1, 2}, {2, 4}}},
		{2, 5, [][2]int{{0, 1}, {1, 2}}},
		{3, 0, [][2]int{{0, 3}}},
	} {
		got := Chunks(c.n, c.w)
		if len(got) != len(c.want) {
			t.Fatalf("Chunks(%d, %d) = %v, want %v", c.n, c.w, got, c.want)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Fatalf("Chunks(%d, %d) = %v, want %v", c.n, c.w, got, c.want)
			}
		}
	}
}
