package replaytest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pftap/pftap/replay"
)

// NewAPIServer starts a recorded apiserver for the length of the test t
// (replay.StartAPIServer): it is closed in t.Cleanup, its kubeconfig is in
// t's temporary directory, and every mismatch between the client and the
// recorded client is reported with t.Errorf (unless a replay.WithReporter
// among opts says otherwise).
func NewAPIServer(t testing.TB, s *replay.Session, opts ...replay.Option) *replay.APIServer {
	t.Helper()
	base := []replay.Option{replay.WithReporter(func(m replay.Mismatch) { t.Errorf("replay: %v", m) }),
		replay.WithKubeconfig(filepath.Join(t.TempDir(), "kubeconfig"))}
	a, err := replay.StartAPIServer(s, append(base, opts...)...)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// RunClient plays the recorded client side of every request against the
// server under test (replay.PlayClient) and reports each mismatch between
// the server's answers and the recorded server's, and a server that could
// not be reached, through t.Errorf (unless a replay.WithReporter among
// opts says otherwise). It returns when every request has been played.
func RunClient(t testing.TB, s *replay.Session, target replay.Target, opts ...replay.Option) []replay.Mismatch {
	t.Helper()
	base := []replay.Option{replay.WithReporter(func(m replay.Mismatch) { t.Errorf("replay: %v", m) })}
	ms, err := replay.PlayClient(context.Background(), s, target, append(base, opts...)...)
	if err != nil {
		t.Errorf("replay: %v", err)
	}
	return ms
}
