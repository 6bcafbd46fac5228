package main

import (
	"io"
	"time"

	"github.com/switchkd/switchkd/progress"
)

// progressBar counts work items on a progress.Line: "name [=====     ] 12/40  ETA 1m2s".
type progressBar struct {
	line        *progress.Line
	name        string
	total, done int
	start       time.Time
}

func newProgress(w io.Writer, name string, total int) *progressBar {
	return &progressBar{line: progress.New(w), name: name, total: total, start: time.Now()}
}

func (p *progressBar) add(n int) {
	p.done += n
	p.line.Set("%s %s %d/%d  ETA %s", p.name, progress.Bar(p.done, p.total, 24), p.done, p.total, progress.ETA(p.start, p.done, p.total))
}

func (p *progressBar) finish() { p.line.Done() }
