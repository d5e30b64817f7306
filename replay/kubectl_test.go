package replay_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/internal/testenv"
	"github.com/pftap/pftap/replay"
	"github.com/pftap/pftap/replay/replaytest"
)

var (
	hostLine = regexp.MustCompile(`(?m)^Host: ([^\r\n]+)\r$`)
	uaLine   = regexp.MustCompile(`(?m)^User-Agent: ([^\r\n]+)\r$`)
)

// curl sends the recorded request with real curl: the same request line
// and headers (Host and User-Agent as recorded: curl's own, or pftap lab's,
// which sends what `curl -A pftap-lab` sends) to kubectl's local port. It
// returns the body.
func curl(t *testing.T, port int, r *replay.Request) ([]byte, error) {
	t.Helper()
	m := hostLine.FindSubmatch(r.ToPod)
	if m == nil {
		t.Fatalf("the recorded request has no Host line: %q", r.ToPod)
	}
	path := strings.Fields(string(r.ToPod))[1]
	args := []string{"-sS", "--max-time", "20", "-H", "Host: " + string(m[1])}
	if ua := uaLine.FindSubmatch(r.ToPod); ua != nil {
		args = append(args, "-A", string(ua[1]))
	}
	cmd := exec.Command("curl", append(args, fmt.Sprintf("http://127.0.0.1:%d%s", port, path))...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("curl: %v: %s", err, stderr.String())
	}
	return out, nil
}

// body is the body of a recorded HTTP response.
func body(b []byte) []byte {
	_, after, _ := bytes.Cut(b, []byte("\r\n\r\n"))
	return after
}

func TestAPIServerKubectl(t *testing.T) {
	testenv.NeedTool(t, kubectl.Path, "kubectl (on every machine)")
	testenv.NeedTool(t, "curl", "curl")
	// Every recording but the error ones (TestAPIServerKubectlError) and
	// spdy-bulk-drops, whose capture lost packets.
	for _, name := range []string{"recordings/spdy-get", "recordings/websocket-get", "recordings/spdy-concurrent", "recordings/websocket-concurrent",
		"recordings/websocket-fallback", "recordings/spdy-bulk-1mib", "recordings/socat-get",
		"recordings/k137-websocket-get", "recordings/skew-136-135-websocket-get", "replay/k137-websocket-get", "replay/skew-136-135-websocket-get",
		"replay/spdy-get", "replay/websocket-get", "replay/spdy-concurrent", "replay/websocket-concurrent", "replay/spdy-bulk", "replay/websocket-bulk",
		"replay/pftap-websocket-get", "replay/socat-spdy-get"} {
		for _, ws := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/websocket=%v", name, ws), func(t *testing.T) {
				s := recording(t, name)
				reqs := s.Requests()
				var opts []replay.Option
				if !ws {
					// kubectl's only way to SPDY: its WebSocket upgrade refused.
					opts = append(opts, replay.WithoutWebSocket())
				}
				a := replaytest.NewAPIServer(t, s, opts...)
				_, pod, _ := s.Pod()
				f, err := kubectl.PortForward(context.Background(), kubectl.Options{Kubeconfig: a.Kubeconfig, Target: "pod/" + pod, Remote: reqs[0].Port})
				if err != nil {
					t.Fatal(err)
				}
				defer f.Stop()
				var wg sync.WaitGroup
				for _, r := range reqs {
					wg.Add(1)
					go func(r *replay.Request) {
						defer wg.Done()
						got, err := curl(t, f.Local, r)
						if err != nil {
							t.Error(err)
							return
						}
						if !bytes.Equal(got, body(r.FromPod)) {
							t.Errorf("curl got %d bytes, the recorded body is %d", len(got), len(body(r.FromPod)))
						}
					}(r)
				}
				wg.Wait()
				time.Sleep(100 * time.Millisecond)
				f.Stop()
				a.Close()
				if a.Played() != len(reqs) {
					t.Errorf("played %d requests, want %d", a.Played(), len(reqs))
				}
			})
		}
	}
}

// TestAPIServerKubectlError: the recorded pod had nothing on the port;
// kubectl prints the recorded error and loses the connection, as it did.
func TestAPIServerKubectlError(t *testing.T) {
	testenv.NeedTool(t, kubectl.Path, "kubectl (on every machine)")
	testenv.NeedTool(t, "curl", "curl")
	for _, name := range []string{"recordings/spdy-refused", "recordings/websocket-refused", "replay/spdy-refused", "replay/websocket-refused"} {
		t.Run(name, func(t *testing.T) {
			s := recording(t, name)
			r := s.Requests()[0]
			var opts []replay.Option
			if !strings.Contains(name, "websocket") {
				opts = append(opts, replay.WithoutWebSocket())
			}
			a := replaytest.NewAPIServer(t, s, opts...)
			_, pod, _ := s.Pod()
			f, err := kubectl.PortForward(context.Background(), kubectl.Options{Kubeconfig: a.Kubeconfig, Target: "pod/" + pod, Remote: r.Port})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Stop()
			if _, err := curl(t, f.Local, r); err == nil {
				t.Error("curl succeeded; the recorded request failed")
			}
			select {
			case <-f.Done():
			case <-time.After(10 * time.Second):
				t.Error("kubectl did not exit after the error")
			}
			out := f.Output()
			// klog quotes the error: compare with its quoted form too.
			if q := strconv.Quote(r.Error); !strings.Contains(out, r.Error) && !strings.Contains(out, q[1:len(q)-1]) {
				t.Errorf("kubectl did not print the recorded error %q; it printed:\n%s", r.Error, out)
			}
			if !strings.Contains(out, "lost connection to pod") {
				t.Errorf("kubectl did not say it lost the connection:\n%s", out)
			}
		})
	}
}
