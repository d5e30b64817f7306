package termout

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// A StatusLine is one line at the bottom of a terminal that keeps being
// rewritten (a long run's progress), with the timeline printed above it:
// whatever is written through it first clears the line, which the next
// update draws again.
type StatusLine struct {
	mu    sync.Mutex
	term  io.Writer // where the line is drawn (stderr)
	out   io.Writer // the timeline (stdout), on the same terminal or not
	same  bool      // out is that terminal too
	shown bool
	stop  chan struct{}
	done  chan struct{}
}

// NewStatusLine draws every, from what status says, until stopped.
func NewStatusLine(term, out io.Writer, same bool, every time.Duration, status func(elapsed time.Duration) string) *StatusLine {
	s := &StatusLine{term: term, out: out, same: same, stop: make(chan struct{}), done: make(chan struct{})}
	start := time.Now()
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.draw(status(time.Since(start)))
			}
		}
	}()
	return s
}

func (s *StatusLine) draw(text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// One row, whatever the terminal's width: a line that wraps leaves
	// rows behind that \r cannot reach.
	io.WriteString(s.term, "\r\x1b[K"+FitWidth(text, termWidth(s.term)))
	s.shown = true
}

// termWidth is the width of the terminal w writes to (80 when it cannot
// be told).
func termWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if n, _, err := term.GetSize(int(f.Fd())); err == nil && n > 0 {
			return n
		}
	}
	return 80
}

// FitWidth cuts text to fewer than width columns (one left for the
// cursor), with an ellipsis where it was cut.
func FitWidth(text string, width int) string {
	r := []rune(text)
	if len(r) < width {
		return text
	}
	return string(r[:max(width-2, 0)]) + "…"
}

// Write writes the timeline, clearing the line first when it shares the
// terminal.
func (s *StatusLine) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shown && s.same {
		io.WriteString(s.term, "\r\x1b[K")
		s.shown = false
	}
	return s.out.Write(p)
}

// Stop ends the updates and removes the line.
func (s *StatusLine) Stop() {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	if s.shown {
		io.WriteString(s.term, "\r\x1b[K")
		s.shown = false
	}
	s.mu.Unlock()
}

// Rates says how much each leg moved, and how fast the chain moves,
// since the last call.
type Rates struct {
	last  []int64
	lastT time.Duration
	moved time.Duration // when a leg last moved
}

// Line is the status line: the time, the rate of the busiest leg (or how
// long nothing has moved), each leg's bytes, and, when drops are counted
// (drops >= 0), the kernel's drops. It fits 80 columns with six legs.
func (r *Rates) Line(elapsed time.Duration, names []string, bytes []int64, drops int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%.1fs", elapsed.Seconds())
	dt := (elapsed - r.lastT).Seconds()
	var top int64
	for i, n := range bytes {
		if i < len(r.last) && n-r.last[i] > top {
			top = n - r.last[i]
		}
	}
	switch {
	case top > 0 && dt > 0:
		r.moved = elapsed
		fmt.Fprintf(&b, " %s/s", rateSize(int64(float64(top)/dt)))
	case len(r.last) > 0:
		// Nothing moved: say since when, not a rate of zero.
		fmt.Fprintf(&b, " quiet %.0fs", (elapsed - r.moved).Seconds())
	}
	b.WriteByte(' ')
	for i, n := range bytes {
		if i >= len(names) || n == 0 {
			continue
		}
		fmt.Fprintf(&b, " %s %s", names[i], shortSize(n))
	}
	if drops >= 0 {
		fmt.Fprintf(&b, "  drops %d", drops)
	}
	r.last, r.lastT = append(r.last[:0], bytes...), elapsed
	return b.String()
}

// rateSize is a rate's byte count, whole units: 930 MiB, 12 KiB.
func rateSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// shortSize is a byte count in four or five characters: 512B, 37K, 452M,
// 1.2G.
func shortSize(n int64) string {
	switch {
	case n >= 10<<30:
		return fmt.Sprintf("%dG", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
