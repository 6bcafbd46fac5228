// Package progress draws the status line of long work (training steps, evaluation, scoring).
// On a terminal the line is redrawn in place; written to a file or a pipe it becomes plain
// lines, at most one per interval, so logs stay readable and short jobs stay quiet.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Every is how often a Line written to a file or pipe prints its state.
const Every = 10 * time.Second

// Line is one status line. Its methods are safe for concurrent use.
type Line struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	every time.Duration
	last  time.Time // when the state was last printed (off a terminal), or created
	text  string    // the latest state
	shown bool      // the latest state has been printed
	wrote bool      // something was printed since the last Done
}

// New returns a Line writing to w (nil: a Line that prints nothing).
func New(w io.Writer) *Line { return newLine(w, isTerminal(w), Every) }

func newLine(w io.Writer, tty bool, every time.Duration) *Line {
	return &Line{w: w, tty: tty, every: every, last: time.Now()}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Set replaces the line's state: redrawn at once on a terminal, printed as a line elsewhere
// when the interval has passed since the last print.
func (l *Line) Set(format string, args ...any) {
	if l == nil || l.w == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.text = fmt.Sprintf(format, args...)
	l.shown = false
	switch {
	case l.tty:
		fmt.Fprintf(l.w, "\r%s   ", l.text)
	case time.Since(l.last) >= l.every:
		fmt.Fprintln(l.w, l.text)
		l.last = time.Now()
	default:
		return
	}
	l.shown, l.wrote = true, true
}

// Done ends the line: on a terminal it moves to the next line; elsewhere it prints the final
// state if lines were printed but not that one. The Line can then be reused.
func (l *Line) Done() {
	if l == nil || l.w == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.tty && l.wrote:
		fmt.Fprintln(l.w)
	case !l.tty && l.wrote && !l.shown:
		fmt.Fprintln(l.w, l.text)
	}
	l.wrote, l.shown = false, false
}

// Bar is "[=====     ]" for done of total, width characters inside the brackets.
func Bar(done, total, width int) string {
	n := min(width, max(0, width*done/max(1, total)))
	return "[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "]"
}

// ETA estimates the time left from the time since start and done of total units, rounded to
// the second (0 before the first unit).
func ETA(start time.Time, done, total int) time.Duration {
	if done <= 0 {
		return 0
	}
	return (time.Duration(float64(time.Since(start)) / float64(done) * float64(total-done))).Round(time.Second)
}
