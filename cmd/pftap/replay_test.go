package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/internal/testenv"
	"github.com/pftap/pftap/replay"
)

// serveReplay runs `pftap replay --serve FILE` in-process, lets use run
// against the server, stops it as Ctrl-C would, and returns its exit code
// and output.
func serveReplay(t *testing.T, file string, use func(a *replay.APIServer)) (int, string, string) {
	t.Helper()
	ios, out, errOut := testIO()
	stop := make(chan struct{})
	ready := make(chan *replay.APIServer, 1)
	var wg sync.WaitGroup
	code := -1
	wg.Add(1)
	go func() {
		defer wg.Done()
		opts := &ReplayOptions{IO: ios, Serve: true, Address: "127.0.0.1:0", File: file, Stop: stop,
			Ready: func(a *replay.APIServer) { ready <- a }}
		if err := replayServe(opts); err != nil {
			fmt.Fprintf(ios.ErrOut, "pftap: %v\n", err)
			code = exitError
			close(ready)
			return
		}
		code = exitOK
	}()
	if a, ok := <-ready; ok {
		use(a)
	}
	close(stop)
	wg.Wait()
	return code, out.String(), errOut.String()
}

// TestReplayServeKubectl: pftap replay --serve of a recording of the
// 1.31-1.35 chain and of the 1.37 one (WebSocket to the kubelet), with the
// machine's kubectl and today's, and plain curl on whatever local port, as
// the README says (the Host port and the User-Agent are the user's, not
// the session's); and a client that deviates.
func TestReplayServeKubectl(t *testing.T) {
	testenv.NeedTool(t, kubectl.Path, "kubectl (on every machine)")
	testenv.NeedTool(t, "curl", "curl")
	kubectls := map[string]string{"machine": kubectl.Path, "today": testenv.TodaysKubectl(t)}
	for _, name := range []string{"websocket-get", "k137-websocket-get"} {
		for _, kc := range []string{"machine", "today"} {
			t.Run(name+"/"+kc, func(t *testing.T) { replayServeKubectl(t, name, kubectls[kc]) })
		}
	}
}

func replayServeKubectl(t *testing.T, name, kubectlPath string) {
	rec := filepath.Join(replays, name+".pcapng")
	s, err := replay.Open(rec)
	if err != nil {
		t.Fatal(err)
	}
	r := s.Requests()[0]
	for _, deviate := range []bool{false, true} {
		t.Run(fmt.Sprintf("deviate=%v", deviate), func(t *testing.T) {
			var body []byte
			code, out, errOut := serveReplay(t, rec, func(a *replay.APIServer) {
				f, err := kubectl.PortForward(context.Background(), kubectl.Options{Kubeconfig: a.Kubeconfig, Target: "pod/nginx", Remote: 80, Kubectl: kubectlPath})
				if err != nil {
					t.Error(err)
					return
				}
				defer f.Stop()
				path := "/"
				if deviate {
					path = "/index.html"
				}
				body, err = exec.Command("curl", "-sS", "--max-time", "20", fmt.Sprintf("http://127.0.0.1:%d%s", f.Local, path)).Output()
				if err != nil {
					t.Errorf("curl: %v", err)
				}
				time.Sleep(200 * time.Millisecond)
			})
			_, wantBody, _ := strings.Cut(string(r.FromPod), "\r\n\r\n")
			if string(body) != wantBody {
				t.Errorf("curl got %q, the recording has %q", body, wantBody)
			}
			if !strings.Contains(out, "kubectl -n default port-forward pod/nginx 8080:80") {
				t.Errorf("no instructions:\n%s", out)
			}
			if !deviate {
				if code != exitOK || !strings.Contains(out, "played 1 of 1 recorded requests; 0 mismatches") {
					t.Errorf("exit %d\n%s\n%s", code, out, errOut)
				}
				return
			}
			if code != exitError {
				t.Errorf("a deviating client: exit %d, want %d", code, exitError)
			}
			for _, want := range []string{"pftap: mismatch: request 1", "- GET / HTTP/1.1\\r", "+ GET /index.html HTTP/1.1\\r", "pftap: the client deviated from the recording: 1 mismatches"} {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
		})
	}
}
