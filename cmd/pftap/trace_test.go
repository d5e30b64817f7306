//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pftap/pftap/agent"
	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/internal/testenv"
	"github.com/pftap/pftap/lab"
	"github.com/pftap/pftap/session"
	"github.com/pftap/pftap/trace"
)

// runTrace runs `pftap trace ARGS` in-process, calls use with the
// forwarded ports, stops it as Ctrl-C would, and returns its exit code and
// output (errors as run would print them).
func runTrace(t *testing.T, args []string, use func(ports []trace.PortPair)) (int, string, string) {
	t.Helper()
	ios, out, errOut := testIO()
	stop := make(chan struct{})
	readyCh := make(chan []trace.PortPair, 1)
	known := filepath.Join(t.TempDir(), "known_agents")
	cmd := newTraceCmd(ios, func(o *TraceOptions) error {
		o.Stop = stop
		o.KnownAgents = known
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

// labClient is a clientset for the lab's API.
func labClient(t *testing.T, l *lab.Lab) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", l.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// labAgentToken is the token of the agents the tests start.
const labAgentToken = "lab-agent-token-0123"

// tokenFile writes a token to a file of the test's, for --agent-token-file.
func tokenFile(t *testing.T, tok string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
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
			if !regexp.MustCompile(`pftap trace: wrote .*trace\.pcapng \(\d+ packets, `).MatchString(errOut) {
				t.Errorf("no wrote line:\n%s", errOut)
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
	t.Run("local port in use", func(t *testing.T) {
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		port := busy.Addr().(*net.TCPAddr).Port
		code, _, errOut := runTrace(t, []string{"--kubeconfig", l.Kubeconfig, "pod/nginx", fmt.Sprintf("%d:80", port)}, nil)
		want := fmt.Sprintf("pftap: cannot listen on local port %d of 127.0.0.1: address already in use", port)
		if code != exitError || strings.TrimSpace(errOut) != want {
			t.Errorf("exit %d: %q, want %q", code, errOut, want)
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
	t.Run("the pod's sandbox gone", func(t *testing.T) {
		// A lab of its own: its pod's sandbox is removed under the
		// running port-forward, as when the pod is deleted.
		gone, err := lab.Start(context.Background(), lab.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer gone.Close()
		code, out, errOut := runTrace(t, []string{"--kubeconfig", gone.Kubeconfig, "--no-color", "pod/nginx", "0:80"}, func(ports []trace.PortPair) {
			gone.RemoveSandbox()
			http.Get(fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local))
			time.Sleep(300 * time.Millisecond)
		})
		if code != exitError || !strings.Contains(out, "↳ the pod's sandbox is gone") || !strings.Contains(errOut, "lost connection to pod: the pod's sandbox is gone") {
			t.Errorf("exit %d:\n%s\n%s", code, out, errOut)
		}
	})
	t.Run("RBAC forbids port-forward", func(t *testing.T) {
		denied, err := lab.Start(context.Background(), lab.Config{DenyPortForward: true})
		if err != nil {
			t.Fatal(err)
		}
		defer denied.Close()
		code, out, errOut := runTrace(t, []string{"--kubeconfig", denied.Kubeconfig, "--no-color", "pod/nginx", "0:80"}, nil)
		want := "403: RBAC forbids this: the user needs the verb create (and get) on pods/portforward"
		if code != exitError || !strings.Contains(errOut, "pftap: "+want) || !strings.Contains(out, "↳ "+want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("exit %d:\n%s\n%s", code, out, errOut)
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
		for _, want := range []string{"400 Bad Request", "↳ 400 from the kubelet: a WebSocket tunnel reached a kubelet that cannot take it", "upgrade=SPDY/3.1"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
}

// TestTraceAgent: pftap agent taps the lab's node (its namespace) and
// trace shows every leg with the same requests; an agent clock shifted by
// 1.5 s is estimated back within 1 ms; a wrong token is one clear line.
func TestTraceAgent(t *testing.T) {
	needRootCmd(t)
	l, err := lab.Start(context.Background(), lab.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	startAgent := func(offset time.Duration) string {
		a, err := agent.New(agent.Options{Token: labAgentToken, Netns: l.NodeNetns, ClockOffset: offset})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go a.Serve(ln)
		return ln.Addr().String() + " " + a.Fingerprint
	}
	for _, shift := range []time.Duration{0, 1500 * time.Millisecond} {
		t.Run(fmt.Sprintf("clock+%s", shift), func(t *testing.T) {
			addr, fp, _ := strings.Cut(startAgent(shift), " ")
			var page, bulk string
			code, out, errOut := runTrace(t, []string{"--kubeconfig", l.Kubeconfig, "--no-color", "--agent", addr, "--agent-token-file", tokenFile(t, labAgentToken),
				"--agent-fingerprint", fp, "pod/nginx", "0:80"}, func(ports []trace.PortPair) {
				page = get(t, ports[0].Local, "/")
				bulk = get(t, ports[0].Local, "/bytes?n=300000")
				// What pftap lab sends, the way it sends it: its timeline
				// shows "request 0 port 80: 77 B → pod, 399 B ← pod".
				if r := session.Send(context.Background(), ports[0].Local, []session.Request{{Method: "GET", Path: "/"}}, session.SendOptions{}); r[0].Err != nil {
					t.Errorf("pftap lab's request through trace: %v", r[0].Err)
				}
				// More requests, more samples for the clock estimate.
				for i := 0; i < 6; i++ {
					get(t, ports[0].Local, "/")
				}
				time.Sleep(200 * time.Millisecond)
			})
			if code != exitOK {
				t.Fatalf("exit %d: %s\n%s", code, errOut, out)
			}
			if page != lab.WelcomePage || len(bulk) != 300000 {
				t.Errorf("through trace: page %d bytes, bulk %d bytes", len(page), len(bulk))
			}
			// The same requests, the same bytes, on the client's leg and on
			// the node's.
			for _, req := range []string{"0", "1"} {
				re := regexp.MustCompile(`(L1 client→apiserver|L3 kubelet→runtime)\s+(request ` + req + ` port 80: \d+ B → pod, [0-9.]+ (?:B|KiB) ← pod), .*, ok`)
				got := map[string]string{}
				for _, m := range re.FindAllStringSubmatch(out, -1) {
					got[m[1]] = m[2]
				}
				if got["L1 client→apiserver"] == "" || got["L1 client→apiserver"] != got["L3 kubelet→runtime"] {
					t.Errorf("request %s: L1 says %q, L3 %q", req, got["L1 client→apiserver"], got["L3 kubelet→runtime"])
				}
			}
			if !strings.Contains(out, "request 1 port 80: ") || !strings.Contains(out, "293.") {
				t.Errorf("no bulk request in the timeline:\n%s", out)
			}
			// pftap lab's request: the same bytes pftap lab shows, on both
			// SPDY legs, and its HTTP request on the pod's lo.
			for _, leg := range []string{"L1 client→apiserver", "L3 kubelet→runtime"} {
				if !regexp.MustCompile(regexp.QuoteMeta(leg) + `\s+request 2 port 80: 77 B → pod, 399 B ← pod, .*, ok`).MatchString(out) {
					t.Errorf("%s lacks pftap lab's request (77 B → pod, 399 B ← pod):\n%s", leg, out)
				}
			}
			for _, want := range []string{`L4 runtime→app\s+→  GET /bytes\?n=300000`, `L2 on the wire \(TLS\)`, `witness pod eth0\s+0 packets`,
				// The node's TLS leg placed on the path by its records.
				`→ pod \d+ B: .*L2 on the wire \(TLS\).*→ L4 runtime→app`, `← pod \d+ B: L4 runtime→app .*L2 on the wire \(TLS\)`,
				`L1 client→apiserver ─`, `→ L3 kubelet→runtime ─`, `→ L4 runtime→app`} {
				if !regexp.MustCompile(want).MatchString(out) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			m := regexp.MustCompile(`the agent's clock runs (\S+) (ahead of|behind) this machine's \(± (\S+),`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no clock estimate:\n%s", out)
			}
			est, _ := time.ParseDuration(m[1])
			if m[2] == "behind" {
				est = -est
			}
			m = append(m[:2], m[3])
			unc, _ := time.ParseDuration(m[2])
			t.Logf("injected %s, estimated %s ± %s", shift, est, unc)
			if d := est - shift; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("estimated %s, injected %s: more than 1 ms off", est, shift)
			}
		})
	}
	t.Run("wrong token", func(t *testing.T) {
		addr, fp, _ := strings.Cut(startAgent(0), " ")
		code, _, errOut := runTrace(t, []string{"--kubeconfig", l.Kubeconfig, "--agent", addr, "--agent-token-file", tokenFile(t, "not-the-agent-token"), "--agent-fingerprint", fp, "pod/nginx", "0:80"}, nil)
		if code != exitError || !strings.Contains(errOut, "pftap: pftap agent at "+addr+": wrong token") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("exit %d: %q", code, errOut)
		}
	})
}

// TestTraceAgentOnlyItsSession: while trace runs, another user
// port-forwards to the same pod (started before trace, so its connections
// are up already) and to another pod on the node (started during the
// trace), with a marker in every URL. The agent sends trace nothing of
// theirs: the marker is nowhere in trace's text, JSON, HTML or recording,
// the left-out connections are counted, and trace's own request shows on
// every leg. An agent started with --allow-node-wide, asked for it, sends
// everything: the marker then shows (the filter is what hid it).
func TestTraceAgentOnlyItsSession(t *testing.T) {
	needRootCmd(t)
	l, err := lab.Start(context.Background(), lab.Config{OtherPod: "other"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const marker = "not-yours-5f3a9c"
	start := func(allow bool) []string {
		a, err := agent.New(agent.Options{Token: labAgentToken, Netns: l.NodeNetns, AllowNodeWide: allow})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go a.Serve(ln)
		return []string{"--kubeconfig", l.Kubeconfig, "--agent", ln.Addr().String(), "--agent-token-file", tokenFile(t, labAgentToken), "--agent-fingerprint", a.Fingerprint}
	}
	// The other user's port-forward to the same pod, up before trace.
	before, err := kubectl.PortForward(context.Background(), kubectl.Options{Kubeconfig: l.Kubeconfig, Target: "pod/nginx", Remote: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer before.Stop()
	theirs := func(port int) {
		for _, p := range []string{"/bytes?n=3000&m=" + marker, "/bytes?n=12&m=" + marker} {
			get(t, port, p)
		}
	}
	use := func(ports []trace.PortPair) {
		theirs(before.Local)
		during, err := kubectl.PortForward(context.Background(), kubectl.Options{Kubeconfig: l.Kubeconfig, Target: "pod/other", Remote: 80})
		if err != nil {
			t.Error(err)
			return
		}
		defer during.Stop()
		theirs(during.Local)
		if page := get(t, ports[0].Local, "/"); page != lab.WelcomePage {
			t.Errorf("trace's own GET: %d bytes", len(page))
		}
		theirs(during.Local)
		theirs(before.Local)
		time.Sleep(300 * time.Millisecond)
	}
	dir := t.TempDir()
	rec, html := filepath.Join(dir, "trace.pcapng"), filepath.Join(dir, "trace.html")
	code, jsonOut, errOut := runTrace(t, append(start(false), "--json", "-w", rec, "--html", html, "pod/nginx", "0:80"), use)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	code, text, errText := runTrace(t, append(start(false), "--no-color", "pod/nginx", "0:80"), use)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errText)
	}
	// The other user's requests happened: both apps served them.
	for name, log := range map[string][]lab.AppRequest{"nginx": l.AppLog(), "other": l.OtherAppLog()} {
		n := 0
		for _, r := range log {
			if strings.Contains(r.Path, marker) {
				n++
			}
		}
		if n < 4 {
			t.Errorf("pod %s served %d of the other user's requests, want 4 or more", name, n)
		}
	}
	recBytes, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	htmlBytes, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	for what, got := range map[string]string{"text": text + errText, "JSON": jsonOut + errOut, "HTML": string(htmlBytes), "recording": string(recBytes)} {
		if strings.Contains(got, marker) {
			t.Errorf("the other user's marker is in trace's %s", what)
		}
	}
	// What was left out is counted, per leg.
	for _, want := range []string{`the agent left out what was not this session's \(counts, not contents\):`,
		`L2 on the wire \(TLS\) [2-9] connections`, `L3 kubelet→runtime [2-9] connections`, `L4 runtime→app [1-9]\d* connections?`,
		// trace's own request on every leg.
		`L3 kubelet→runtime\s+request 0 port 80: \d+ B → pod, \d+ B ← pod, .*, ok`, `L4 runtime→app\s+→  GET /\s`,
		`→ pod \d+ B: L1 client→apiserver ─\S+→ L2 on the wire \(TLS\) ─\S+→ L3 kubelet→runtime ─\S+→ L4 runtime→app`} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("trace's text lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "request 0 port 80:"); n != 2 {
		t.Errorf("%d request summaries, want 2 (L1 and L3, trace's own request only):\n%s", n, text)
	}
	var legsObj struct {
		Legs []struct {
			Leg     string `json:"leg"`
			LeftOut int    `json:"left_out_connections"`
			Drops   uint64 `json:"drops"`
		} `json:"legs"`
	}
	for _, line := range strings.Split(jsonOut, "\n") {
		if strings.Contains(line, `"kind":"legs"`) {
			json.Unmarshal([]byte(line), &legsObj)
		}
	}
	left := map[string]int{}
	for _, lg := range legsObj.Legs {
		left[lg.Leg] = lg.LeftOut
	}
	if left["L3 kubelet→runtime"] < 2 || left["L2 on the wire (TLS)"] < 2 {
		t.Errorf("JSON legs: %+v", legsObj)
	}
	// Node-wide, from an agent that allows it: the marker shows.
	_, wide, _ := runTrace(t, append(start(true), "--no-color", "--agent-node-wide", "pod/nginx", "0:80"), use)
	if !strings.Contains(wide, marker) || strings.Contains(wide, "left out") {
		t.Errorf("node-wide: the other user's requests do not show:\n%s", wide)
	}
	// An agent that does not allow it refuses, in one line.
	code, _, errRefused := runTrace(t, append(start(false), "--agent-node-wide", "pod/nginx", "0:80"), nil)
	if code != exitError || !strings.Contains(errRefused, "not started with --allow-node-wide") || strings.Count(strings.TrimSpace(errRefused), "\n") != 0 {
		t.Errorf("node-wide from an agent that does not allow it: exit %d, %q", code, errRefused)
	}
}

// TestTraceAgentDeploy: --agent deploy creates the agent pod through the
// lab's API (spec checked), watches it until it runs, reaches it through
// the API's port-forward, shows the node's legs, and deletes the pod.
func TestTraceAgentDeploy(t *testing.T) {
	needRootCmd(t)
	l, err := lab.Start(context.Background(), lab.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var page string
	code, out, errOut := runTrace(t, []string{"--kubeconfig", l.Kubeconfig, "--no-color", "--agent", "deploy", "--agent-image", "example.org/pftap:test", "pod/nginx", "0:80"},
		func(ports []trace.PortPair) {
			page = get(t, ports[0].Local, "/")
			for i := 0; i < 3; i++ {
				get(t, ports[0].Local, "/")
			}
			time.Sleep(200 * time.Millisecond)
		})
	if code != exitOK || page != lab.WelcomePage {
		t.Fatalf("exit %d, page %d bytes: %s\n%s", code, len(page), errOut, out)
	}
	for _, want := range []string{`L3 kubelet→runtime\s+→  open data stream`, `L4 runtime→app\s+→  GET /`, `the agent's clock runs`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The agent's own stream crosses L2 and L3 on its way to trace: it
	// must be on no leg. Four GETs of the welcome page cost pftap lab
	// about 2 KB of SPDY on L3 and 6 KB of TLS on L2 each; with the
	// agent's stream tapped they were hundreds of MB.
	for _, m := range regexp.MustCompile(`(?m)^  (L2 on the wire \(TLS\)|L3 kubelet→runtime|L4 runtime→app)\s+(\d+) packets\s+(\d+) bytes`).FindAllStringSubmatch(out, -1) {
		if n, _ := strconv.Atoi(m[3]); n > 64<<10 {
			t.Errorf("%s carried %s bytes for four small GETs: the agent taps its own stream", m[1], m[3])
		}
	}
	if !regexp.MustCompile(`(?m)^  L3 kubelet→runtime\s+\d+ packets`).MatchString(out) {
		t.Errorf("no legs table:\n%s", out)
	}
	if m := regexp.MustCompile(`(\d+) gaps`).FindStringSubmatch(out); m == nil || m[1] != "0" {
		t.Errorf("gaps: %v\n%s", m, out)
	}
	if !strings.Contains(errOut, "left out of every leg") {
		t.Errorf("trace does not say which connections the agent left out:\n%s", errOut)
	}
	m := regexp.MustCompile(`created agent pod default/(pftap-agent-[0-9a-f]+) on node pftap-lab-node \(image example.org/pftap:test\)`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("no creation line:\n%s", errOut)
	}
	name := m[1]
	if !strings.Contains(errOut, "pftap trace: deleted agent pod default/"+name) {
		t.Errorf("no deletion line:\n%s", errOut)
	}
	log := strings.Join(l.HostPodLog(), "\n")
	for _, want := range []string{"create default/" + name, "watch default metadata.name=" + name, "delete default/" + name} {
		if !strings.Contains(log, want) {
			t.Errorf("the lab's API did not see %q:\n%s", want, log)
		}
	}
	// The pod is gone: GET says 404.
	cs := labClient(t, l)
	if _, err := cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("GET the agent pod after trace: %v, want NotFound", err)
	}
	spec := trace.AgentPod("default", "pftap-lab-node", "img", "tok", []byte("c"), []byte("k"))
	if !spec.Spec.HostNetwork || !spec.Spec.HostPID || !*spec.Spec.Containers[0].SecurityContext.Privileged ||
		spec.Spec.ActiveDeadlineSeconds == nil || !strings.Contains(strings.Join(spec.Spec.Containers[0].Command, " "), "--listen 127.0.0.1:10299 --exit-when-idle ") {
		t.Errorf("agent pod spec: %+v", spec.Spec)
	}
}

// TestTraceProxy: the kubeconfig's proxy-url (here --proxy-url) is used as
// kubectl uses it: pftap's relay reaches the apiserver through HTTP
// CONNECT.
func TestTraceProxy(t *testing.T) {
	needRootCmd(t)
	l, err := lab.Start(context.Background(), lab.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	connects := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil || req.Method != http.MethodConnect {
					return
				}
				connects <- req.Host
				up, err := net.Dial("tcp", req.Host)
				if err != nil {
					io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
					return
				}
				defer up.Close()
				io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
				go io.Copy(up, br)
				io.Copy(c, up)
			}(c)
		}
	}()
	var page string
	code, out, errOut := runTrace(t, []string{"--kubeconfig", l.Kubeconfig, "--no-color", "--proxy-url", "http://" + ln.Addr().String(), "pod/nginx", "0:80"},
		func(ports []trace.PortPair) { page = get(t, ports[0].Local, "/") })
	if code != exitOK || page != lab.WelcomePage {
		t.Fatalf("exit %d, page %d bytes: %s\n%s", code, len(page), errOut, out)
	}
	select {
	case host := <-connects:
		if host != l.APIServer.Host {
			t.Errorf("CONNECT %s, want the apiserver %s", host, l.APIServer.Host)
		}
	default:
		t.Error("the proxy saw no CONNECT")
	}
}

// TestTraceAppOnPodIP: the app listens on the pod's IP only; port-forward
// is refused, and trace, with the agent's view of the pod's sockets, says
// so.
func TestTraceAppOnPodIP(t *testing.T) {
	needRootCmd(t)
	testenv.NeedTool(t, "socat", "socat")
	app := `socat TCP4-LISTEN:80,bind=127.0.0.1,fork,reuseaddr SYSTEM:'echo ok' & ` +
		`socat TCP4-LISTEN:8081,bind=$(ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1),fork,reuseaddr SYSTEM:'echo hi' & wait`
	l, agentArgs := labWithAgent(t, lab.Config{App: app})
	code, out, errOut := runTrace(t, append(agentArgs, "--no-color", "pod/nginx", "0:8081"),
		func(ports []trace.PortPair) {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0].Local))
			if err == nil {
				c.Write([]byte("hello\n"))
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				io.Copy(io.Discard, c)
				c.Close()
			}
			time.Sleep(300 * time.Millisecond)
		})
	want := "the app listens on " + l.PodIP().String() + ":8081: the pod's IP only, not localhost"
	if code != exitError || !strings.Contains(out, "↳ "+want) || !strings.Contains(errOut, "lost connection to pod: "+want) {
		t.Errorf("exit %d; want %q in the timeline and the error:\n%s\n%s", code, want, out, errOut)
	}
}

// TestTraceAgentContainerd: the containerd lab treated as a cluster. The
// agent is told nothing but the node's namespace: it finds containerd's
// streaming port among the node's loopback listeners and the sandbox's
// CNI namespace by the pod's IP, and trace shows every leg with the same
// requests and bytes as pftap lab shows for the same requests.
func TestTraceAgentContainerd(t *testing.T) {
	needContainerdCmd(t)
	reqs := []session.Request{{Method: "GET", Path: "/"}, {Method: "GET", Path: "/bytes?n=30000"}}
	// pftap lab's view of the requests.
	ios, labOut, labErr := testIO()
	if err := labRun(&LabRunOptions{IO: ios, Runtime: lab.RuntimeContainerd, App: lab.AppBuiltin, Client: "pftap",
		Requests: []string{"GET /", "GET /bytes?n=30000"}, Concurrency: 1, NoColor: true}); err != nil {
		t.Fatalf("pftap lab: %v\n%s", err, labErr)
	}
	perLeg := func(out string) map[string]string {
		got := map[string]string{}
		re := regexp.MustCompile(`(L1 client→apiserver|L2 apiserver→kubelet|L3 kubelet→runtime)\s+(request \d port 80: \d+ B → pod, [0-9.]+ (?:B|KiB) ← pod), .*, ok`)
		// A request's summary line comes when its streams end, and
		// containerd ends a data stream a second after the client's: a
		// request's line can follow the next one's. Compare as sets.
		var lines []string
		for _, m := range re.FindAllStringSubmatch(out, -1) {
			lines = append(lines, m[1]+"\x00"+m[2])
		}
		sort.Strings(lines)
		for _, l := range lines {
			leg, sum, _ := strings.Cut(l, "\x00")
			got[leg] += sum + "; "
		}
		for _, m := range regexp.MustCompile(`L4 runtime→app\s+→  (GET \S+)`).FindAllStringSubmatch(out, -1) {
			got["L4"] += m[1] + "; "
		}
		return got
	}
	want := perLeg(labOut.String())
	if want["L3 kubelet→runtime"] == "" || want["L4"] != "GET /; GET /bytes?n=30000; " {
		t.Fatalf("pftap lab's timeline: %v\n%s", want, labOut)
	}

	l, agentArgs := labWithAgent(t, lab.Config{Runtime: lab.RuntimeContainerd})
	code, out, errOut := runTrace(t, append(agentArgs, "--no-color", "pod/nginx", "0:80"), func(ports []trace.PortPair) {
		for _, r := range session.Send(context.Background(), ports[0].Local, reqs, session.SendOptions{}) {
			if r.Err != nil {
				t.Errorf("through trace: %v", r.Err)
			}
		}
		// containerd closes its end of a data stream a second after the
		// client's (its forwarder lingers): wait for the streams to end.
		time.Sleep(2500 * time.Millisecond)
	})
	if code != exitOK {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	if testing.Verbose() {
		t.Logf("trace through containerd:\n%s", out)
	}
	// The agent found containerd's port and CNI's namespace itself.
	port := strconv.Itoa(l.StreamingAddr.Port)
	if !regexp.MustCompile(`L3 kubelet→runtime.*ports \[[0-9 ]*\b` + port + `\b`).MatchString(out + errOut) {
		t.Errorf("the agent's L3 does not name containerd's streaming port %s:\n%s\n%s", port, errOut, out)
	}
	if !strings.Contains(out+errOut, "/run/netns/cni-") {
		t.Errorf("the agent did not name the sandbox's CNI namespace:\n%s\n%s", errOut, out)
	}
	got := perLeg(out)
	for _, k := range []string{"L1 client→apiserver", "L3 kubelet→runtime", "L4"} {
		if got[k] != want[k] {
			t.Errorf("%s: trace shows %q, pftap lab %q", k, got[k], want[k])
		}
	}
	if !regexp.MustCompile(`witness pod eth0\s+0 packets`).MatchString(out) {
		t.Errorf("the witness saw port-forward traffic:\n%s", out)
	}
}

// labWithAgent starts a lab and a pftap agent on its node (in this
// process, told only the node's namespace), both stopped when the test
// ends, and returns the lab and trace's flags that reach the agent.
func labWithAgent(t *testing.T, cfg lab.Config) (*lab.Lab, []string) {
	t.Helper()
	l, err := lab.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	a, err := agent.New(agent.Options{Token: labAgentToken, Netns: l.NodeNetns})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go a.Serve(ln)
	return l, []string{"--kubeconfig", l.Kubeconfig, "--agent", ln.Addr().String(), "--agent-token-file", tokenFile(t, labAgentToken), "--agent-fingerprint", a.Fingerprint}
}

// traceLegs reads trace's {"kind":"legs"} object.
func traceLegs(t *testing.T, jsonOut string) (legs []benchLeg, sent int64) {
	t.Helper()
	for _, line := range strings.Split(jsonOut, "\n") {
		if strings.Contains(line, `"kind":"legs"`) {
			var v struct {
				Legs      []benchLeg `json:"legs"`
				AgentSent int64      `json:"agent_sent"`
			}
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Fatal(err)
			}
			return v.Legs, v.AgentSent
		}
	}
	t.Fatalf("no legs object:\n%s", lastLines(jsonOut, 10))
	return nil, 0
}

// TestTraceAgentGiB: a 1 GiB GET through trace with a deployed agent (a
// process of its own on the lab's node, reached through the apiserver as
// on a cluster): no gap and no drop on any leg, every byte on each, and
// what the agent sent trace is a sliver of it.
func TestTraceAgentGiB(t *testing.T) {
	needRootCmd(t)
	l, err := lab.Start(context.Background(), lab.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const n = 1 << 30
	link0 := linkBytes(l.HostLink())
	code, out, errOut := runTrace(t, []string{"--kubeconfig", l.Kubeconfig, "--json", "--agent", "deploy", "--agent-image", "example.org/pftap:test", "pod/nginx", "0:80"},
		func(ports []trace.PortPair) {
			c := exec.Command("curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", fmt.Sprintf("http://127.0.0.1:%d/bytes?n=%d", ports[0].Local, n))
			b, err := c.Output()
			if err != nil || string(b) != strconv.Itoa(n) {
				t.Errorf("curl: %v, %s bytes", err, b)
			}
			time.Sleep(300 * time.Millisecond)
		})
	link := linkBytes(l.HostLink()) - link0
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	legs, sent := traceLegs(t, out)
	if len(legs) != 5 {
		t.Fatalf("legs %+v", legs)
	}
	for _, lg := range legs {
		if lg.Gaps != 0 || lg.Drops != 0 {
			t.Errorf("%s: %d gaps, %d drops", lg.Leg, lg.Gaps, lg.Drops)
		}
	}
	var sum struct {
		Legs map[string]struct {
			Bytes int64 `json:"bytes"`
		} `json:"legs"`
		Gaps int `json:"gaps"`
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, `{"kind":"summary"`) {
			json.Unmarshal([]byte(line), &sum)
		}
	}
	for _, name := range []string{"L1 client→apiserver", "L2 on the wire (TLS)", "L3 kubelet→runtime", "L4 runtime→app"} {
		if b := sum.Legs[name].Bytes; b < n || b > n+n/50 {
			t.Errorf("%s carried %d bytes of the 1 GiB GET", name, b)
		}
	}
	t.Logf("host↔apiserver link %d bytes (%.4f× the GET), the agent sent %d", link, float64(link)/n, sent)
	if sent <= 0 || sent > n/200 {
		t.Errorf("the agent sent trace %d bytes for a 1 GiB GET: want a fraction of a percent", sent)
	}
	if float64(link) > 1.02*n {
		t.Errorf("the host↔apiserver link carried %d bytes: over 1.02× the GET", link)
	}
}

// TestTraceAgentThrottledRecording: with -w through an agent whose link to
// trace carries 2 MB/s, a 40 MB GET is recorded without losing a packet:
// the frames the link could not carry are there with their headers (caplen
// below the wire length, a comment saying why), trace's decoding shows no
// gap, and trace counts the shortened frames.
func TestTraceAgentThrottledRecording(t *testing.T) {
	needRootCmd(t)
	l, err := lab.Start(context.Background(), lab.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err := agent.New(agent.Options{Token: labAgentToken, Netns: l.NodeNetns, MaxSendRate: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go a.Serve(ln)
	rec := filepath.Join(t.TempDir(), "throttled.pcapng")
	code, out, errOut := runTrace(t, []string{"--kubeconfig", l.Kubeconfig, "--json", "-w", rec, "--agent", ln.Addr().String(), "--agent-token-file", tokenFile(t, labAgentToken),
		"--agent-fingerprint", a.Fingerprint, "pod/nginx", "0:80"}, func(ports []trace.PortPair) {
		if b := get(t, ports[0].Local, "/bytes?n=40000000"); len(b) != 40000000 {
			t.Errorf("GET: %d bytes", len(b))
		}
		time.Sleep(300 * time.Millisecond)
	})
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	legs, _ := traceLegs(t, out)
	var shortened uint64
	want := map[string]int64{}
	for _, lg := range legs {
		if lg.Gaps != 0 || lg.Drops != 0 {
			t.Errorf("%s: %d gaps, %d drops", lg.Leg, lg.Gaps, lg.Drops)
		}
		shortened += lg.Shortened
		want[lg.Leg] = lg.Packets
	}
	if shortened == 0 {
		t.Fatalf("no frame shortened at 2 MB/s: %+v", legs)
	}
	// The file: every packet of every leg, the shortened ones marked.
	f, err := os.Open(rec)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.NgReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	var cut uint64
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		ifc, _ := r.Interface(ci.InterfaceIndex)
		got[ifc.Name]++
		if ci.CaptureLength < ci.Length {
			cut++
			if len(data) > 120 {
				t.Errorf("a shortened frame kept %d bytes", len(data))
			}
		}
	}
	for leg, n := range want {
		if got[leg] != n {
			t.Errorf("%s: %d packets recorded, %d on the leg", leg, got[leg], n)
		}
	}
	if cut != shortened {
		t.Errorf("%d frames cut in the file, trace counted %d", cut, shortened)
	}
	if b, _ := os.ReadFile(rec); !strings.Contains(string(b), "payload not sent by pftap agent") {
		t.Error("no shortened frame says why in its comment")
	}
}

// TestTraceUpgradeBy: with L1 alone, the 101 is attributed as the
// cluster's path says, and the text says that is where it comes from.
func TestTraceUpgradeBy(t *testing.T) {
	needRootCmd(t)
	l, err := lab.Start(context.Background(), lab.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	code, out, errOut := runTrace(t, []string{"--kubeconfig", l.Kubeconfig, "--json", "pod/nginx", "0:80"}, func(ports []trace.PortPair) { get(t, ports[0].Local, "/") })
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !regexp.MustCompile(`"kind":"http-response".*the kubelet's, as the cluster's path says \(node pftap-lab-node declares ExtendWebSocketsToKubelet.*"status":101.*"upgrade_by":"kubelet"`).MatchString(out) {
		t.Errorf("trace's L1 101:\n%s", out)
	}
}
