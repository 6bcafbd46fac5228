package data

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrLoaderClosed is returned by Next after Close.
var ErrLoaderClosed = errors.New("data: loader closed")

// Loader prepares examples ahead of use with a pool of worker goroutines, so that image decoding
// and preprocessing overlap the consumer's compute. Examples come out in exactly the order given
// (order[0], order[1], ...) whatever the scheduling; at most `prefetch` examples are queued ahead
// of the consumer (plus one being dispatched).
//
// Errors are per sample: Next returns the error of that position (naming the sample index and id)
// and the following Next continues with the next position. A panic in fn becomes an error.
type Loader struct {
	samples []Sample
	order   []int
	fn      func(Sample) (Example, error)

	pending chan *slot
	jobs    chan job
	done    chan struct{}
	wg      sync.WaitGroup

	closeOnce sync.Once
}

type result struct {
	ex  Example
	err error
}

type slot struct {
	index int
	res   chan result // buffered 1: workers never block on it
}

type job struct {
	s *slot
}

// NewLoader starts the pipeline over samples in the given order (indices into samples; nil means
// 0..len-1). workers and prefetch are clamped to at least 1. Call Close when done.
func NewLoader(samples []Sample, order []int, workers, prefetch int, fn func(Sample) (Example, error)) *Loader {
	if order == nil {
		order = make([]int, len(samples))
		for i := range order {
			order[i] = i
		}
	}
	workers, prefetch = max(workers, 1), max(prefetch, 1)
	l := &Loader{
		samples: samples,
		order:   append([]int(nil), order...),
		fn:      fn,
		pending: make(chan *slot, prefetch),
		jobs:    make(chan job),
		done:    make(chan struct{}),
	}
	l.wg.Add(1 + workers)
	go l.dispatch()
	for w := 0; w < workers; w++ {
		go l.work()
	}
	return l
}

func (l *Loader) dispatch() {
	defer l.wg.Done()
	defer close(l.jobs)
	defer close(l.pending)
	for _, idx := range l.order {
		s := &slot{index: idx, res: make(chan result, 1)}
		select {
		case l.pending <- s:
		case <-l.done:
			return
		}
		select {
		case l.jobs <- job{s}:
		case <-l.done:
			return
		}
	}
}

func (l *Loader) work() {
	defer l.wg.Done()
	for {
		select {
		case j, ok := <-l.jobs:
			if !ok {
				return
			}
			j.s.res <- l.run(j.s.index)
		case <-l.done:
			return
		}
	}
}

func (l *Loader) run(idx int) (r result) {
	if idx < 0 || idx >= len(l.samples) {
		return result{err: fmt.Errorf("data: loader: sample index %d out of range [0, %d)", idx, len(l.samples))}
	}
	s := l.samples[idx]
	defer func() {
		if p := recover(); p != nil {
			r = result{err: fmt.Errorf("data: %s: panic while loading: %v", describe(idx, s.ID), p)}
		}
	}()
	ex, err := l.fn(s)
	if err != nil {
		return result{err: fmt.Errorf("data: %s: %w", describe(idx, s.ID), err)}
	}
	return result{ex: ex}
}

// Next returns the next example in order with its sample index. At the end it returns io.EOF,
// after Close ErrLoaderClosed. Next must not be called concurrently.
func (l *Loader) Next() (Example, int, error) {
	select {
	case <-l.done:
		return Example{}, -1, ErrLoaderClosed
	default:
	}
	var s *slot
	var ok bool
	select {
	case s, ok = <-l.pending:
		if !ok {
			return Example{}, -1, io.EOF
		}
	case <-l.done:
		return Example{}, -1, ErrLoaderClosed
	}
	select {
	case r := <-s.res:
		return r.ex, s.index, r.err
	case <-l.done:
		return Example{}, -1, ErrLoaderClosed
	}
}

// Len is the number of positions in the loader's order.
func (l *Loader) Len() int { return len(l.order) }

// Close stops the workers and waits for them (an fn call in progress is waited for). It is safe to
// call more than once.
func (l *Loader) Close() {
	l.closeOnce.Do(func() {
		close(l.done)
		l.wg.Wait()
	})
}
