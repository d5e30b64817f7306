package replay

import (
	"fmt"
	"strings"
	"time"
)

// Mode says how what a peer sends is compared with the recording.
type Mode int

const (
	// Semantic compares stream types, ports and the bytes of each stream
	// direction, whatever the request IDs and however the bytes are
	// chunked into DATA frames. HTTP Date header lines are masked.
	Semantic Mode = iota
	// Strict also compares request IDs, every SYN_STREAM header, and each
	// DATA frame byte for byte.
	Strict
)

// String names the mode.
func (m Mode) String() string {
	if m == Strict {
		return "strict"
	}
	return "semantic"
}

// An Option adjusts a recorded apiserver or a recorded client.
type Option func(*options)

type options struct {
	mode    Mode
	timing  bool
	wait    time.Duration
	report  func(Mismatch)
	addr    string
	kubecfg string
	noWS    bool
}

func defaults(opts []Option) options {
	o := options{wait: 10 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// WithMode sets the comparison mode (Semantic by default).
func WithMode(m Mode) Option { return func(o *options) { o.mode = m } }

// WithRecordedTiming plays the recorded side with the recorded gaps
// between its frames, instead of as fast as possible.
func WithRecordedTiming() Option { return func(o *options) { o.timing = true } }

// WithWait sets how long playback waits for the peer to do what the
// recorded peer did next (10 s by default) before reporting a mismatch
// and going on.
func WithWait(d time.Duration) Option { return func(o *options) { o.wait = d } }

// WithReporter receives every mismatch as it is found, in place of the
// test's Errorf (replaytest.NewAPIServer, replaytest.RunClient) or of nothing (StartAPIServer,
// which also keeps them for Mismatches).
func WithReporter(f func(Mismatch)) Option { return func(o *options) { o.report = f } }

// WithAddress sets the address a recorded apiserver listens on
// (127.0.0.1:0 by default).
func WithAddress(addr string) Option { return func(o *options) { o.addr = addr } }

// WithoutWebSocket makes a recorded apiserver refuse every WebSocket
// port-forward upgrade (400), so that a client that tries WebSocket first
// (kubectl 1.31 and later, which from 1.38 has no switch for it) falls
// back to SPDY.
func WithoutWebSocket() Option { return func(o *options) { o.noWS = true } }

// WithKubeconfig sets where a recorded apiserver writes its kubeconfig.
func WithKubeconfig(path string) Option { return func(o *options) { o.kubecfg = path } }

// Mismatch is one difference between what a peer did and what the
// recorded peer did.
type Mismatch struct {
	// Request is the recorded request's number, from 1 in the order the
	// requests started; 0 for the session as a whole.
	Request int
	// RequestID is the recorded request's requestID.
	RequestID string
	// Stream is the stream type ("data", "error") where it applies.
	Stream string
	// What is one line: what differs.
	What string
	// Diff shows recorded (-) against received (+), where there are bytes
	// to compare.
	Diff string
}

// Error renders the mismatch, its diff indented below its line.
func (m Mismatch) Error() string {
	var b strings.Builder
	if m.Request > 0 {
		fmt.Fprintf(&b, "request %d (recorded requestID %q)", m.Request, m.RequestID)
		if m.Stream != "" {
			fmt.Fprintf(&b, ", %s stream", m.Stream)
		}
		b.WriteString(": ")
	}
	b.WriteString(m.What)
	if m.Diff != "" {
		b.WriteString("\n")
		for _, l := range strings.Split(strings.TrimRight(m.Diff, "\n"), "\n") {
			b.WriteString("    " + l + "\n")
		}
	}
	return strings.TrimRight(b.String(), "\n")
}
