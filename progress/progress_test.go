package progress

import (
	"bytes"
	"testing"
	"time"
)

func TestTerminalRedrawsInPlace(t *testing.T) {
	var b bytes.Buffer
	l := newLine(&b, true, Every)
	l.Set("step %d", 1)
	l.Set("step %d", 2)
	l.Done()
	if got, want := b.String(), "\rstep 1   \rstep 2   \n"; got != want {
		t.Fatalf("terminal output %q, want %q", got, want)
	}
}

func TestFileGetsThrottledLines(t *testing.T) {
	var b bytes.Buffer
	l := newLine(&b, false, time.Hour)
	l.Set("step 1")
	l.Set("step 2")
	l.Done()
	if b.Len() != 0 {
		t.Fatalf("a short job printed %q, want nothing", b.String())
	}
	l = newLine(&b, false, 0) // every update is due
	l.Set("step %d", 1)
	l.Set("step %d", 2)
	l.Done()
	if got, want := b.String(), "step 1\nstep 2\n"; got != want {
		t.Fatalf("file output %q, want %q", got, want)
	}
	// Lines were printed but not the last state: Done prints it.
	b.Reset()
	l = newLine(&b, false, 0)
	l.Set("step 1")
	l.every = time.Hour
	l.Set("step 2")
	l.Done()
	if got, want := b.String(), "step 1\nstep 2\n"; got != want {
		t.Fatalf("file output %q, want %q", got, want)
	}
	var nilLine *Line
	nilLine.Set("x")
	nilLine.Done()
	New(nil).Set("x")
}

func TestBarAndETA(t *testing.T) {
	for _, c := range []struct {
		done, total int
		want        string
	}{{0, 4, "[    ]"}, {1, 4, "[=   ]"}, {4, 4, "[====]"}, {9, 4, "[====]"}, {1, 0, "[====]"}} {
		if got := Bar(c.done, c.total, 4); got != c.want {
			t.Errorf("Bar(%d, %d) = %q, want %q", c.done, c.total, got, c.want)
		}
	}
	if got := ETA(time.Now().Add(-10*time.Second), 2, 6); got < 19*time.Second || got > 21*time.Second {
		t.Errorf("ETA after 10 s for 2 of 6 = %v, want ~20s", got)
	}
	if ETA(time.Now(), 0, 6) != 0 {
		t.Error("ETA before the first unit is not 0")
	}
}
