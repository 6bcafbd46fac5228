package train

import (
	"errors"
	"sync"
)

// Parallel runs fn(0), ..., fn(n-1) in goroutines, at most limit at a time (limit <= 0: all
// at once), and returns their errors joined (nil if none). Each fn writes its own results.
func Parallel(n, limit int, fn func(k int) error) error {
	if limit <= 0 {
		limit = n
	}
	errs := make([]error, n)
	sem := make(chan struct{}, max(1, limit))
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[k] = fn(k)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Chunks splits n items into min(w, n) contiguous [lo, hi) ranges of near-equal size.
func Chunks(n, w int) [][2]int {
	w = max(1, min(w, n))
	out := make([][2]int, w)
	for i := range out {
		out[i] = [2]int{i * n / w, (i + 1) * n / w}
	}
	return out
}
