package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/pftap/pftap/lab"
	"github.com/pftap/pftap/trace"
)

// TestLabErasJSON runs `pftap lab --json` (pftap's client, and kubectl) in
// each era and checks what each leg carried: the L2 upgrade is the
// client's GET with WebSocket (1.36+ with a declaring node) or a POST
// with SPDY (earlier, or skew); the request has the same requestID on
// every SPDY leg; its path crosses every leg in order to the pod's lo and
// back, each hop's latency is not negative, and they add up to the end to
// end time. Both runtimes that stream: upstream's server in-process, and
// the real containerd daemon, whose L3 is its own streaming server's
// token URL.
func TestLabErasJSON(t *testing.T) {
	needRootCmd(t)
	type era struct {
		runtime, client, kubernetes, kubelet string
		l2                                   string // the last upgrade request on L2
	}
	var eras []era
	// containerd2: containerd 2.x built from github.com/containerd/containerd/v2
	// (PFTAP_CONTAINERD2, scripts/test.sh), whose streaming server is
	// upstream's k8s.io/cri-streaming.
	for _, rt := range []string{"cri-streaming", "containerd", "containerd2"} {
		eras = append(eras,
			era{rt, "pftap", "1.37", "", "GET websocket"},
			era{rt, "kubectl", "1.37", "", "GET websocket"},
			era{rt, "kubectl", "1.38", "", "GET websocket"},
			era{rt, "pftap", "1.35", "", "POST SPDY/3.1"},
			era{rt, "kubectl", "1.36", "1.35", "POST SPDY/3.1"},
			era{rt, "kubectl", "1.30", "", "POST SPDY/3.1"})
	}
	eras = append(eras, era{"containerd", "pftap", "1.30", "", "POST SPDY/3.1"}, era{"containerd", "kubectl", "1.35", "", "POST SPDY/3.1"},
		era{"containerd", "pftap", "1.36", "1.35", "POST SPDY/3.1"}, era{"containerd", "pftap", "1.38", "", "GET websocket"})
	for _, tc := range eras {
		t.Run(tc.runtime+"/"+tc.client+"/"+tc.kubernetes+"/"+tc.kubelet, func(t *testing.T) {
			runtime, daemon := tc.runtime, ""
			if runtime == "containerd2" {
				runtime, daemon = lab.RuntimeContainerd, containerd2(t)
			}
			if runtime == lab.RuntimeContainerd {
				needContainerdCmd(t)
			}
			ios, out, errOut := testIO()
			opts := &LabRunOptions{IO: ios, Runtime: runtime, App: "builtin", Client: tc.client, Requests: []string{"GET /bytes?n=30000"}, Concurrency: 1, JSON: true}
			opts.era.kubernetes, opts.era.kubelet, opts.era.containerd = tc.kubernetes, tc.kubelet, daemon
			if err := opts.era.check(opts.Runtime, false); err != nil {
				t.Fatal(err)
			}
			if err := labRun(opts); err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			var l2Upgrade, l3Path string
			ids := map[string]map[string]bool{} // leg ID → request IDs that ended there
			var hops []map[string]any
			sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var ev map[string]any
				if json.Unmarshal(sc.Bytes(), &ev) != nil {
					continue
				}
				legID, _ := ev["leg_id"].(string)
				switch ev["kind"] {
				case "http-request":
					if legID == "L2" && strings.Contains(ev["path"].(string), "/portForward/") {
						up := ""
						if h, ok := ev["http_headers"].(map[string]any); ok {
							up, _ = h["upgrade"].(string)
						}
						l2Upgrade = ev["method"].(string) + " " + up
					}
					if legID == "L3" {
						l3Path = ev["path"].(string)
					}
				case "request":
					if id, ok := ev["request_id"].(string); ok {
						if ids[legID] == nil {
							ids[legID] = map[string]bool{}
						}
						ids[legID][id] = true
					}
				case "hops":
					hops = append(hops, ev)
				case "lab":
					if v, _ := ev["runtime_version"].(string); daemon != "" && !strings.HasPrefix(v, "2.") {
						t.Errorf("the lab ran containerd %q, want the 2.x at %s", v, daemon)
					}
				}
			}
			if l2Upgrade != tc.l2 {
				t.Errorf("the L2 upgrade was %q, want %q", l2Upgrade, tc.l2)
			}
			if !strings.HasPrefix(l3Path, "/portforward/") {
				t.Errorf("the L3 upgrade went to %q, want the runtime's token URL", l3Path)
			}
			if !strings.Contains(out.String(), `"kind":"app"`) {
				t.Errorf("no app log: the app's own record of the request (containerd: its container log)")
			}
			for _, id := range []string{"L1", "L2", "L3"} {
				if !ids[id]["0"] || len(ids[id]) != 1 {
					t.Errorf("requests ended on %s: %v, want request 0 alone", id, ids[id])
				}
			}
			if len(hops) != 1 {
				t.Fatalf("%d hops objects, want 1", len(hops))
			}
			for _, dir := range []string{"to_pod", "from_pod"} {
				d := hops[0][dir].(map[string]any)
				var legs []string
				for _, l := range d["legs"].([]any) {
					legs = append(legs, strings.Fields(l.(map[string]any)["leg"].(string))[0])
				}
				want := "user→" + tc.client + " L1 L2 L2 L3 L4"
				if dir == "from_pod" {
					want = "L4 L3 L2 L2 L1 user→" + tc.client
				}
				got := strings.Join(legs, " ")
				// Every hop's order and latency is exact: the SPDY frames a
				// WebSocket message carries are stamped when their own bytes
				// came (a message's stamp had put L1 after the user's leg,
				// which kubectl had already written to).
				if got != want {
					t.Errorf("%s crossed %v, want %s", dir, legs, want)
				}
				var sum float64
				for _, f := range d["first_byte_ns"].([]any) {
					if f.(float64) < 0 {
						t.Errorf("%s: a negative hop latency: %v", dir, d["first_byte_ns"])
					}
					sum += f.(float64)
				}
				if total := d["total_ns"].(float64); sum != total {
					t.Errorf("%s: the hops add up to %v ns, the end to end time is %v ns", dir, sum, total)
				}
			}
		})
	}
}

// TestTracePath: pftap trace reads the server's version and the pod's
// Node and says which chain this cluster takes, in each era; its own
// port-forward works in each (falling back to SPDY before 1.31).
func TestTracePath(t *testing.T) {
	needRootCmd(t)
	for _, tc := range []struct {
		cfg  lab.Config
		want string
	}{
		{lab.Config{}, "node pftap-lab-node (kubelet v1.37.0-pftap-lab) declares ExtendWebSocketsToKubelet: the apiserver passes the WebSocket on to the kubelet (L2 carries WebSocket)"},
		{lab.Config{Kubernetes: lab.Version{Minor: 36}, Kubelet: lab.Version{Minor: 35}}, "node pftap-lab-node (kubelet v1.35.0-pftap-lab) does not declare ExtendWebSocketsToKubelet: the apiserver tunnels the WebSocket into SPDY (L2 carries SPDY)"},
		{lab.Config{Kubernetes: lab.Version{Minor: 35}}, "Kubernetes v1.35.0-pftap-lab: the apiserver tunnels the WebSocket into SPDY towards the kubelet"},
		{lab.Config{Kubernetes: lab.Version{Minor: 30}}, "Kubernetes v1.30.0-pftap-lab: the apiserver does not tunnel WebSocket port-forward"},
	} {
		name := "default"
		if !tc.cfg.Kubernetes.IsZero() {
			name = tc.cfg.Kubernetes.String()
		}
		if !tc.cfg.Kubelet.IsZero() {
			name += "-kubelet-" + tc.cfg.Kubelet.String()
		}
		t.Run(name, func(t *testing.T) {
			l, err := lab.Start(context.Background(), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var page string
			code, out, errOut := runTrace(t, []string{"--kubeconfig", l.Kubeconfig, "--no-color", "pod/nginx", "0:80"}, func(ports []trace.PortPair) {
				page = get(t, ports[0].Local, "/")
			})
			if code != exitOK || page != lab.WelcomePage {
				t.Fatalf("exit %d, page %q\n%s\n%s", code, page, out, errOut)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("trace does not say %q:\n%s", tc.want, out)
			}
		})
	}
}

// containerd2 is the containerd 2.x scripts/test.sh builds from
// github.com/containerd/containerd/v2 with its runc shim beside it
// (PFTAP_CONTAINERD2): the tests fail in CI without it and skip elsewhere.
func containerd2(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("PFTAP_CONTAINERD2")
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("PFTAP_CONTAINERD2 is not set: run the tests with scripts/test.sh, which builds containerd 2")
		}
		t.Skip("PFTAP_CONTAINERD2 is not set (scripts/test.sh builds containerd 2 from github.com/containerd/containerd/v2)")
	}
	return bin
}
