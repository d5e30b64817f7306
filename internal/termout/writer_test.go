package termout

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the flush timer's goroutine.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) {
	return 0, errors.New("write /dev/stdout: broken pipe")
}

// TestWriterGathers: trace's output is written in one write for many
// lines, no later than GatherFor after the first; through and Flush
// write what is held first; a failed write is reported, once, by Flush.
func TestWriterGathers(t *testing.T) {
	var out lockedBuffer
	s := NewWriter(&out)
	for i := range 100 {
		s.Write([]byte(strings.Repeat("x", i%7) + "\n"))
	}
	if got := out.String(); got != "" {
		t.Fatalf("written at once: %q", got)
	}
	deadline := time.Now().Add(2 * time.Second)
	for out.String() == "" && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := strings.Count(out.String(), "\n"); n != 100 || out.writes != 1 {
		t.Fatalf("after %v: %d lines in %d writes, want 100 in 1", GatherFor, n, out.writes)
	}
	// through: what was held goes to the old writer, the rest to the new.
	var status lockedBuffer
	s.Write([]byte("before\n"))
	s.Through(&status)
	s.Write([]byte("during\n"))
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "before\n") || status.String() != "during\n" {
		t.Fatalf("through: out ends %q, status %q", out.String()[len(out.String())-10:], status.String())
	}
	// A big burst is written before the timer.
	s.Through(nil)
	s.Write(make([]byte, 70<<10))
	if out.writes != 3 {
		t.Fatalf("70 KiB held: %d writes, want 3", out.writes)
	}
	f := NewWriter(failingWriter{})
	f.Write([]byte("a\n"))
	err := f.Flush()
	if err == nil || !strings.Contains(err.Error(), "broken pipe") {
		t.Fatalf("Flush after a failed write: %v", err)
	}
	if _, err := f.Write([]byte("b\n")); err == nil {
		t.Fatal("a write after a failed one succeeded")
	}
}
