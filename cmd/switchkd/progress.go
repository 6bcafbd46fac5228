package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress draws "name [=====     ] 12/40  ETA 1m2s" on a terminal, and stays quiet when the
// writer is not one (logs and pipes get no carriage-return noise).
type progress struct {
	w           io.Writer
	name        string
	total, done int
	start       time.Time
	tty         bool
}

func newProgress(w io.Writer, name string, total int) *progress {
	p := &progress{w: w, name: name, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) add(n int) {
	p.done += n
	if !p.tty {
		return
	}
	const width = 24
	fill := width * p.done / max(1, p.total)
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = ' '
		if i < fill {
			bar[i] = '='
		}
	}
	eta := time.Duration(0)
	if p.done > 0 {
		eta = time.Duration(float64(time.Since(p.start)) / float64(p.done) * float64(p.total-p.done))
	}
	fmt.Fprintf(p.w, "\r%s [%s] %d/%d  ETA %s   ", p.name, bar, p.done, p.total, eta.Round(time.Second))
}

func (p *progress) finish() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}
