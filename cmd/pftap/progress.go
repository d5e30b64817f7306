package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// statusLine is one line at the bottom of a terminal that keeps being
// rewritten (a long run's progress), with the timeline printed above it:
// whatever is written through it first clears the line, which the next
// update draws again.
type statusLine struct {
	mu    sync.Mutex
	term  io.Writer // where the line is drawn (stderr)
	out   io.Writer // the timeline (stdout), on the same terminal or not
	same  bool      // out is that terminal too
	shown bool
	stop  chan struct{}
	done  chan struct{}
}

// newStatusLine draws every, from what status says, until stopped.
func newStatusLine(term, out io.Writer, same bool, every time.Duration, status func(elapsed time.Duration) string) *statusLine {
	s := &statusLine{term: term, out: out, same: same, stop: make(chan struct{}), done: make(chan struct{})}
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

func (s *statusLine) draw(text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	io.WriteString(s.term, "\r\x1b[K"+text)
	s.shown = true
}

// Write writes the timeline, clearing the line first when it shares the
// terminal.
func (s *statusLine) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shown && s.same {
		io.WriteString(s.term, "\r\x1b[K")
		s.shown = false
	}
	return s.out.Write(p)
}

// Stop ends the updates and removes the line.
func (s *statusLine) Stop() {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	if s.shown {
		io.WriteString(s.term, "\r\x1b[K")
		s.shown = false
	}
	s.mu.Unlock()
}

// legRates says, per leg, how much it moved and how fast since the last
// call.
type legRates struct {
	last  []int64
	lastT time.Duration
}

func (r *legRates) line(elapsed time.Duration, names []string, bytes []int64, drops uint64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%6.1fs", elapsed.Seconds())
	dt := (elapsed - r.lastT).Seconds()
	for i, n := range bytes {
		if i >= len(names) || n == 0 {
			continue
		}
		rate := ""
		if i < len(r.last) && dt > 0 {
			rate = fmt.Sprintf(" %s/s", formatSize(int64(float64(n-r.last[i])/dt)))
		}
		fmt.Fprintf(&b, "  %s %s%s", names[i], formatSize(n), rate)
	}
	fmt.Fprintf(&b, "  drops %d", drops)
	r.last, r.lastT = append(r.last[:0], bytes...), elapsed
	return b.String()
}
