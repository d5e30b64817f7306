//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pftap/pftap/internal/trace"
	"github.com/pftap/pftap/lab"
)

// runTrace runs `pftap trace ARGS` in-process, calls use with the
// forwarded ports, stops it as Ctrl-C would, and returns its exit code and
// output (errors as run would print them).
func runTrace(t *testing.T, args []string, use func(ports []trace.PortPair)) (int, string, string) {
	t.Helper()
	ios, out, errOut := testIO()
	stop := make(chan struct{})
	readyCh := make(chan []trace.PortPair, 1)
	cmd := newTraceCmd(ios, func(o *TraceOptions) error {
		o.Stop = stop
		o.Ready = func(p []trace.PortPair) { readyCh <- p }
		return traceRun(o)
	})
	cmd.SetArgs(args)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	done := make(chan error, 1)
	go func() { done <- cmd.Execute() }()
	var err error
	select {
	case p := <-readyCh:
		if use != nil {
			use(p)
		}
		close(stop)
		err = <-done
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("pftap trace did not start in 30s")
	}
	code := exitOK
	if err != nil {
		fmt.Fprintf(errOut, "pftap: %v\n", err)
		code = exitError
	}
	return code, out.String(), errOut.String()
}

func get(t *testing.T, port int, path string) string {
	t.Helper()
	// Connection: close, so that the request ends with the response (a
	// kept-alive connection would be reset when trace stops).
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("GET %s through trace: %v", path, err)
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestTraceTargets: pod/NAME, NAME, svc/NAME with a named port and
// deploy/NAME resolve to the lab's pod; the page comes through, the
// timeline shows the upgrade and the request, -w records a file that
// pftap decode reads.
func TestTraceTargets(t *testing.T) {
	needRootCmd(t)
	l, err := lab.Start(context.Background(), lab.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		target, port, via string
		spdy              bool
	}{
		{"pod/nginx", "0:80", "", false},
		{"nginx", "0:80", "", true},
		{"svc/nginx", ":http", "svc/nginx selects 1 pod(s); using nginx", false},
		{"deploy/nginx", "0:80", "deploy/nginx selects 1 pod(s); using nginx", false},
	} {
		t.Run(tc.target+"/"+tc.port, func(t *testing.T) {
			rec := filepath.Join(t.TempDir(), "trace.pcapng")
			args := []string{"--kubeconfig", l.Kubeconfig, "--no-color", "-w", rec, tc.target, tc.port}
			if tc.spdy {
				args = append(args, "--spdy")
			}
			var page string
			code, out, errOut := runTrace(t, args, func(ports []trace.PortPair) {
				if len(ports) != 1 || ports[0].Remote != 80 {
					t.Errorf("ports %+v, want one to 80", ports)
					return
				}
				page = get(t, ports[0].Local, "/")
				time.Sleep(100 * time.Millisecond)
			})
			if code != exitOK {
				t.Fatalf("exit %d: %s\n%s", code, errOut, out)
			}
			if page != lab.WelcomePage {
				t.Errorf("page through trace: %q", page)
			}
			upgrade := "upgrade=websocket"
			if tc.spdy {
				upgrade = "upgrade=SPDY/3.1"
			}
			for _, want := range []string{"pftap trace: pod default/nginx", tc.via, upgrade, "101 Switching Protocols", "open data stream", "request 0 port 80: ", ", ok", "summary: "} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			ios, dout, _ := testIO()
			if err := decodeRun(&DecodeOptions{IO: ios, File: rec}); err != nil {
				t.Errorf("pftap decode of trace's recording: %v", err)
			}
			if !strings.Contains(dout.String(), "request 0 port 80") {
				t.Errorf("the recording lacks the request:\n%s", dout)
			}
			raw, _ := os.ReadFile(rec)
			if strings.Contains(string(raw), "Bearer "+l.Config().Token) {
				t.Error("the recording holds the bearer token")
			}
		})
	}
}

// TestTraceDiagnoses produces failures in the lab and checks what trace
// says about them.
func TestTraceDiagnoses(t *testing.T) {
	needRootCmd(t)
	l, err := lab.Start(context.Background(), lab.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	old, err := lab.Start(context.Background(), lab.Config{NoWebSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	t.Run("nothing listening", func(t *testing.T) {
		code, out, errOut := runTrace(t, []string{"--kubeconfig", l.Kubeconfig, "--no-color", "pod/nginx", "0:81"}, func(ports []trace.PortPair) {
			http.Get(fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local))
			time.Sleep(300 * time.Millisecond)
		})
		if code != exitError {
			t.Errorf("exit %d, want %d", code, exitError)
		}
		if !strings.Contains(out, "↳ nothing is listening on port 81 on the pod's loopback") {
			t.Errorf("no diagnosis in the timeline:\n%s", out)
		}
		if first := strings.SplitN(errOut, "\n", 2)[0]; !strings.HasPrefix(first, "pftap: lost connection to pod: nothing is listening on port 81") {
			t.Errorf("error line %q", first)
		}
	})
	t.Run("no such pod", func(t *testing.T) {
		code, _, errOut := runTrace(t, []string{"--kubeconfig", l.Kubeconfig, "pod/nope", "8080:80"}, nil)
		if code != exitError || !strings.Contains(errOut, "pod nope not found in namespace default") {
			t.Errorf("exit %d: %s", code, errOut)
		}
	})
	t.Run("no such service port", func(t *testing.T) {
		code, _, errOut := runTrace(t, []string{"--kubeconfig", l.Kubeconfig, "svc/nginx", "8080:81"}, nil)
		if code != exitError || !strings.Contains(errOut, "service nginx has no port 81") {
			t.Errorf("exit %d: %s", code, errOut)
		}
	})
	t.Run("bad token", func(t *testing.T) {
		code, _, errOut := runTrace(t, []string{"--kubeconfig", l.Kubeconfig, "--token", "not-the-lab-token", "pod/nginx", "0:80"}, nil)
		if code != exitError || !strings.Contains(errOut, "the apiserver did not accept your credentials (401)") {
			t.Errorf("exit %d: %s", code, errOut)
		}
	})
	t.Run("websocket refused", func(t *testing.T) {
		var page string
		code, out, errOut := runTrace(t, []string{"--kubeconfig", old.Kubeconfig, "--no-color", "pod/nginx", "0:80"}, func(ports []trace.PortPair) {
			page = get(t, ports[0].Local, "/")
		})
		if code != exitOK || page != lab.WelcomePage {
			t.Fatalf("exit %d, page %q: %s", code, page, errOut)
		}
		for _, want := range []string{"400 Bad Request", "↳ 400: the apiserver refused the upgrade; for WebSocket this is an apiserver before 1.31", "upgrade=SPDY/3.1"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
}
