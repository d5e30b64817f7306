package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/internal/testenv"
	"github.com/pftap/pftap/lab"
	"github.com/pftap/pftap/labrun"
	"github.com/pftap/pftap/session"
	"github.com/pftap/pftap/trace"
)

// diagnosisNames reads the {"kind":"diagnosis"} objects' names.
func diagnosisNames(t *testing.T, out []byte) []string {
	t.Helper()
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var o map[string]any
		if json.Unmarshal(sc.Bytes(), &o) == nil && o["kind"] == "diagnosis" {
			names = append(names, o["name"].(string))
			if ev, _ := o["evidence"].([]any); len(ev) == 0 || o["hop"] == "" || o["text"] == "" {
				t.Errorf("diagnosis without hop, text or evidence: %v", o)
			}
		}
	}
	return names
}

// TestLabFaults: each fault pftap lab --fault produces, with pftap's
// client and with kubectl, is named by one diagnosis in lab's text and
// JSON, and the same again by pftap decode of the session's recording.
func TestLabFaults(t *testing.T) {
	needRootCmd(t)
	type run struct {
		fault           labrun.Fault
		client, runtime string
	}
	var runs []run
	for _, f := range labrun.Faults {
		for _, client := range []string{"pftap", "kubectl"} {
			runs = append(runs, run{f, client, "cri-streaming"})
		}
		// The real daemon: killed with SIGKILL, stopped with SIGSTOP.
		if f.Name == labrun.FaultRuntimeDies || f.Name == labrun.FaultRuntimeHangs || f.Name == labrun.FaultSandboxGone || f.Name == labrun.FaultStreamEOF {
			runs = append(runs, run{f, "kubectl", "containerd"})
		}
	}
	for _, r := range runs {
		f, client := r.fault, r.client
		{
			t.Run(f.Name+"/"+client+"/"+r.runtime, func(t *testing.T) {
				if r.runtime == "containerd" {
					needContainerdCmd(t)
				}
				timeout := session.DefaultHeaderTimeout
				if f.Name == labrun.FaultRuntimeHangs || f.Name == labrun.FaultStreamEOF {
					timeout = 3 * time.Second // not client-go's 30 s
				}
				rec := filepath.Join(t.TempDir(), "fault.pcapng")
				run := func(json bool, write string) (string, error) {
					ios, out, errOut := testIO()
					opts := &LabRunOptions{IO: ios, Runtime: r.runtime, App: "builtin", Client: client, Concurrency: 1, Repeat: 1,
						HeaderTimeout: timeout, Fault: f.Name, JSON: json, Write: write, NoColor: true}
					if f.Name == labrun.FaultClientReset {
						opts.Requests = []string{"GET /bytes?n=67108864"} // as the command's default for it
					}
					if err := validateLabRun(opts); err != nil {
						t.Fatal(err)
					}
					err := labRun(opts)
					return out.String() + errOut.String(), err
				}
				out, _ := run(true, rec)
				if got := diagnosisNames(t, []byte(out)); len(got) != 1 || got[0] != f.Finding {
					t.Errorf("lab --json: diagnoses %v, want [%s]\n%s", got, f.Finding, lastLines(out, 30))
				}
				text, _ := run(false, "")
				if f.Name == labrun.FaultAppOnPodIP && !strings.Contains(text, "diagnosis: the app listens on the pod's IP only") {
					t.Errorf("lab's diagnosis does not name the app on the pod's IP:\n%s", lastLines(text, 30))
				}
				if strings.Count(text, "\ndiagnosis: ") != 1 {
					t.Errorf("lab's text has %d diagnosis lines, want 1:\n%s", strings.Count(text, "\ndiagnosis: "), lastLines(text, 30))
				}
				ios, dout, _ := testIO()
				decodeRun(&DecodeOptions{IO: ios, File: rec, JSON: true})
				if got := diagnosisNames(t, dout.Bytes()); len(got) != 1 || got[0] != f.Finding {
					t.Errorf("decode of the recording: diagnoses %v, want [%s]", got, f.Finding)
				}
			})
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestTraceFaults: pftap trace, with the agent's legs, against the lab
// failing as --fault makes it, names the same failure as pftap lab.
func TestTraceFaults(t *testing.T) {
	needRootCmd(t)
	for _, tc := range []struct {
		fault string
		cfg   lab.Config
		port  string
		use   func(t *testing.T, l *lab.Lab, local int)
		want  string
	}{
		{labrun.FaultRefused, lab.Config{}, "0:81", func(t *testing.T, l *lab.Lab, local int) { httpGet(local, "/") }, "refused"},
		{labrun.FaultSandboxGone, lab.Config{}, "0:80", func(t *testing.T, l *lab.Lab, local int) { l.RemoveSandbox(); httpGet(local, "/") }, "sandbox-gone"},
		// The agent's view of the pod's sockets (row 4).
		{labrun.FaultAppOnPodIP, lab.Config{AppOnPodIP: true}, "0:80", func(t *testing.T, l *lab.Lab, local int) { httpGet(local, "/") }, "refused"},
		{labrun.FaultSkew, lab.Config{Kubernetes: lab.Version{Minor: 36}, Kubelet: lab.Version{Minor: 35}, StaleDeclaredFeatures: true}, "0:80",
			func(t *testing.T, l *lab.Lab, local int) { httpGet(local, "/") }, "websocket-fallback"},
		{labrun.FaultRuntimeDies, lab.Config{}, "0:80", func(t *testing.T, l *lab.Lab, local int) {
			go func() { time.Sleep(150 * time.Millisecond); l.KillRuntime() }()
			httpGet(local, "/bytes?n=1000000000")
		}, "runtime-died"},
		// The agent's legs show where the SYN_STREAM stopped (row 1).
		{labrun.FaultRuntimeHangs, lab.Config{}, "0:80", func(t *testing.T, l *lab.Lab, local int) {
			l.FreezeRuntime()
			httpGetWithin(local, "/", 2*time.Second)
		}, "stream-unanswered"},
		{labrun.FaultStreamEOF, lab.Config{}, "0:80", func(t *testing.T, l *lab.Lab, local int) {
			l.FreezeRuntime()
			time.AfterFunc(labrun.StreamEOFAfter, func() { l.KillRuntime() })
			httpGetWithin(local, "/", 2*time.Second)
		}, "stream-eof"},
		// The silence and the resets, per leg (row 11).
		{labrun.FaultIdleDrop, lab.Config{Middlebox: lab.MiddleboxIdleDrop}, "0:80", func(t *testing.T, l *lab.Lab, local int) {
			httpGet(local, "/")
			time.Sleep(l.Config().IdleAfter + 1500*time.Millisecond)
			httpGetWithin(local, "/", 2*time.Second)
		}, "idle-dropped"},
		// trace taps its own connection to the proxy below the proxy's TLS.
		{labrun.FaultHTTPSProxy, lab.Config{Middlebox: lab.MiddleboxHTTPSProxy}, "0:80", func(t *testing.T, l *lab.Lab, local int) {
			httpGet(local, "/")
		}, "https-proxy"},
		{labrun.FaultSchemeMismatch, lab.Config{RuntimeHTTPS: true}, "0:80", func(t *testing.T, l *lab.Lab, local int) {
			httpGetWithin(local, "/", 2*time.Second)
		}, "scheme-mismatch"},
		// The user's leg is trace's own listener: the local client's RST
		// is seen there, then the RST_STREAM on every leg (row 5).
		{labrun.FaultClientReset, lab.Config{}, "0:80", func(t *testing.T, l *lab.Lab, local int) {
			r, _ := session.ParseRequest("GET /bytes?n=67108864")
			res := session.Send(context.Background(), local, []session.Request{r}, session.SendOptions{Reset: true, ResetAfter: labrun.ClientResetAfter})
			if res[0].Err != nil {
				t.Errorf("the resetting client's request: %v", res[0].Err)
			}
		}, "client-reset"},
		// trace's own client meets the same 403 kubectl does (row 8).
		{labrun.FaultRBAC, lab.Config{DenyPortForward: true}, "0:80", nil, "forbidden"},
		// The kubeconfig names the gateway; trace taps its connection to
		// it below the gateway's TLS (row 9).
		{labrun.FaultStripUpgrades, lab.Config{Middlebox: lab.MiddleboxStripUpgrades}, "0:80", nil, "upgrade-stripped"},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			// Each run fails a lab of its own, as the fault leaves it.
			trace := func(extra ...string) (string, string) {
				l, agentArgs := labWithAgent(t, tc.cfg)
				_, out, errOut := runTrace(t, append(append(agentArgs, extra...), "pod/nginx", tc.port), func(ports []trace.PortPair) {
					if tc.use != nil {
						tc.use(t, l, ports[0].Local)
					}
					time.Sleep(400 * time.Millisecond)
				})
				return out, errOut
			}
			out, errOut := trace("--json")
			if got := diagnosisNames(t, []byte(out)); len(got) != 1 || got[0] != tc.want {
				t.Errorf("trace --json's diagnoses %v, want [%s]\n%s\n%s", got, tc.want, errOut, lastLines(out, 20))
			}
			// The same failure again, for the text: one diagnosis line
			// and its explanation.
			text, errText := trace("--no-color")
			if n := strings.Count("\n"+text, "\ndiagnosis: "); n != 1 || !strings.Contains(text, "\n  ↳ ") {
				t.Errorf("trace's text has %d diagnosis lines, want 1 with its ↳ explanation:\n%s\n%s", n, errText, lastLines(text, 30))
			}
			// No local leg in trace: client-go's own report of the
			// reset is printed, and is the evidence.
			if tc.fault == labrun.FaultClientReset && (!strings.Contains(text, "pftap's port-forward client (client-go) reported:") ||
				!strings.Contains(out, `"kind":"client_log","line":"Error copying from `)) {
				t.Errorf("trace does not print client-go's report of the local reset:\n%s", lastLines(text, 20))
			}
			if tc.fault == labrun.FaultAppOnPodIP && !strings.Contains(text, "diagnosis: the app listens on the pod's IP only") {
				t.Errorf("trace's diagnosis does not name the app on the pod's IP:\n%s", lastLines(text, 20))
			}
		})
	}
}

// httpGet fetches a path from a local port, reading what comes.
func httpGet(port int, path string) { httpGetWithin(port, path, 0) }

// httpGetWithin is httpGet giving up after d (0: never).
func httpGetWithin(port int, path string, d time.Duration) {
	resp, err := (&http.Client{Timeout: d}).Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// TestHTTPSProxyKubectls: through the lab's HTTPS proxy, kubectl 1.32's
// WebSocket dialer cannot use the https:// proxy and falls back to SPDY
// (nothing of its WebSocket reaches the proxy); today's kubectl's
// WebSocket goes through. pftap says which, from the wire.
func TestHTTPSProxyKubectls(t *testing.T) {
	needRootCmd(t)
	for _, tc := range []struct {
		name, bin, want, upgrade string
	}{
		{"machine", kubectl.Path, "its WebSocket never reached the proxy", "upgrade=SPDY/3.1"},
		{"today", testenv.TodaysKubectl(t), "its WebSocket got through", "upgrade=websocket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := kubectl.Path
			kubectl.Path = tc.bin
			defer func() { kubectl.Path = old }()
			ios, out, errOut := testIO()
			opts := &LabRunOptions{IO: ios, Runtime: "cri-streaming", App: "builtin", Client: "kubectl", Concurrency: 1, Repeat: 1,
				HeaderTimeout: session.DefaultHeaderTimeout, Fault: labrun.FaultHTTPSProxy, NoColor: true}
			if err := validateLabRun(opts); err != nil {
				t.Fatal(err)
			}
			if err := labRun(opts); err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			text := out.String()
			if !strings.Contains(text, "diagnosis: "+"the client went through an HTTPS proxy") || !strings.Contains(text, tc.want) ||
				!strings.Contains(text, "CONNECT 10.") || !strings.Contains(text, "→ CONNECT tunnel") || !strings.Contains(text, tc.upgrade) {
				t.Errorf("want the proxy's CONNECT, %q and %q:\n%s", tc.want, tc.upgrade, lastLines(text, 40))
			}
		})
	}
}
