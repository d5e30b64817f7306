package termout

import (
	"io"
	"sync"
	"time"
)

// Writer serialises writes from several goroutines; through, when
// set, is where they go instead (the status line). It gathers what is
// written and writes it out at most GatherFor later (or once 64 KiB are
// held, or at Flush): a busy trace prints several lines per request, one
// write(2) each had been 7% of its CPU at 3,000 small GETs, and the
// timeline is already 50 ms behind the taps.
type Writer struct {
	mu    sync.Mutex
	w     io.Writer
	via   io.Writer
	buf   []byte
	timer *time.Timer
	err   error // the first failed write
}

// GatherFor bounds how long trace's output waits in a Writer.
const GatherFor = 20 * time.Millisecond

func (s *Writer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	s.buf = append(s.buf, p...)
	switch {
	case len(s.buf) >= 64<<10:
		s.flushLocked()
	case s.timer == nil:
		s.timer = time.AfterFunc(GatherFor, func() { s.Flush() })
	}
	return len(p), nil
}

// Flush writes out what is held and returns the first write's error.
func (s *Writer) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushLocked()
	return s.err
}

func (s *Writer) flushLocked() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if len(s.buf) == 0 || s.err != nil {
		s.buf = s.buf[:0]
		return
	}
	w := s.w
	if s.via != nil {
		w = s.via
	}
	if _, err := w.Write(s.buf); err != nil {
		s.err = err
	}
	s.buf = s.buf[:0]
}

// Through sends what is written to w instead (a status line), or, with
// nil, back where it went.
func (s *Writer) Through(w io.Writer) {
	s.mu.Lock()
	// What was written before goes where it was meant to.
	s.flushLocked()
	if w == nil {
		s.via = nil
	} else {
		s.via = w
	}
	s.mu.Unlock()
}

// NewWriter returns a Writer that gathers what is written for w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }
