package replay_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/pftap/pftap/internal/testenv"
	"github.com/pftap/pftap/lab"
	"github.com/pftap/pftap/replay"
	"github.com/pftap/pftap/replay/replaytest"
)

func startLab(t *testing.T) *lab.Lab {
	t.Helper()
	testenv.NeedRoot(t, "the lab makes network namespaces")
	l, err := lab.Start(context.Background(), lab.Config{})
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	return l
}

// TestClientAgainstStreamingServer plays the recorded client against the
// lab's runtime streaming server (upstream k8s.io/cri-streaming): no
// mismatch.
func TestClientAgainstStreamingServer(t *testing.T) {
	l := startLab(t)
	for _, name := range []string{"recordings/spdy-get", "recordings/websocket-get", "recordings/spdy-concurrent", "recordings/spdy-bulk-1mib",
		"replay/spdy-get", "replay/websocket-concurrent", "replay/spdy-bulk", "replay/pftap-websocket-get"} {
		t.Run(name, func(t *testing.T) {
			u, err := l.PortForwardURL()
			if err != nil {
				t.Fatal(err)
			}
			s := recording(t, name)
			replaytest.RunClient(t, s, replay.Target{URL: u.String(), Dial: l.DialNode})
		})
	}
}

// TestClientAgainstLabAPIServer plays the recorded client through the
// lab's apiserver (TLS, bearer token, the WebSocket tunnel or SPDY), its
// kubelet and its runtime.
func TestClientAgainstLabAPIServer(t *testing.T) {
	l := startLab(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(l.CA)
	for _, ws := range []bool{false, true} {
		t.Run(fmt.Sprintf("websocket=%v", ws), func(t *testing.T) {
			s := recording(t, "replay/spdy-concurrent")
			c := l.Config()
			u := fmt.Sprintf("%s/api/v1/namespaces/%s/pods/%s/portforward", l.APIServer, c.Namespace, c.Pod)
			replaytest.RunClient(t, s, replay.Target{URL: u, TLS: &tls.Config{RootCAs: pool}, WebSocket: ws,
				Header: http.Header{"Authorization": {"Bearer " + c.Token}}})
		})
	}
}

// TestClientMismatch: the recorded error stream names the recording lab's
// sandbox, this lab's names its own, so the recorded client reports a diff.
func TestClientMismatch(t *testing.T) {
	l := startLab(t)
	s := recording(t, "replay/spdy-refused")
	u, err := l.PortForwardURL()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	replaytest.RunClient(t, s, replay.Target{URL: u.String(), Dial: l.DialNode}, replay.WithReporter(func(m replay.Mismatch) { got = append(got, m.Error()) }))
	text := strings.Join(got, "\n")
	t.Logf("mismatches:\n%s", text)
	// Nothing listened on port 81 in the recorded pod either: the error
	// streams differ only in the sandbox's name.
	if !strings.Contains(text, "error stream: the server sent other bytes than the recorded server") {
		t.Errorf("no error stream mismatch reported")
	}
}
