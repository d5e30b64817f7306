package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/internal/testenv"
	"github.com/pftap/pftap/lab"
	"github.com/pftap/pftap/session"
	"github.com/pftap/pftap/trace"
)

// realKubelet is the kubelet scripts/test.sh builds from k8s.io/kubernetes
// (PFTAP_KUBELET), with the real kube-apiserver and containerd it needs.
func realKubelet(t *testing.T) (apiserver, kubelet string) {
	t.Helper()
	apiserver = realAPIServer(t)
	needContainerdCmd(t)
	kubelet = os.Getenv("PFTAP_KUBELET")
	if kubelet == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("PFTAP_KUBELET is not set: run the tests with scripts/test.sh, which builds the kubelet")
		}
		t.Skip("PFTAP_KUBELET is not set (scripts/test.sh builds the kubelet from k8s.io/kubernetes)")
	}
	return apiserver, kubelet
}

// TestRealKubeletLabRun: pftap lab with every hop real (the kube-apiserver,
// the kubelet, containerd, kubectl): pftap's client and both kubectls get
// their 200s, the app's log shows the requests, and the header names the
// real kubelet; L2 is seen on the wire only (the real kubelet's TLS ends
// inside it), L3 and L4 carry the requests.
func TestRealKubeletLabRun(t *testing.T) {
	apiserver, kubelet := realKubelet(t)
	for _, client := range []string{"pftap", "kubectl", "kubectl-today"} {
		t.Run(client, func(t *testing.T) {
			ios, out, errOut := testIO()
			opts := &LabRunOptions{IO: ios, Runtime: lab.RuntimeContainerd, App: "builtin", Client: client, Requests: []string{"GET /", "GET /bytes?n=100000"}, Concurrency: 1, Repeat: 1, HeaderTimeout: session.DefaultHeaderTimeout, NoColor: true}
			if client == "kubectl-today" {
				opts.Client, opts.Kubectl = "kubectl", testenv.TodaysKubectl(t)
			}
			opts.era.binary, opts.era.kubeletBinary = apiserver, kubelet
			if err := validateLabRun(opts); err != nil {
				t.Fatal(err)
			}
			if err := labRun(opts); err != nil {
				t.Fatalf("%v\n%s\n%s", err, errOut, out)
			}
			text := out.String()
			for _, want := range []string{"the real kube-apiserver v1.37.2 and the real kubelet v1.37.2", "kubelet v1.37.2 (upstream's)",
				"the real kubelet's TLS ends inside it", "GET /                    200 OK", "GET /bytes?n=100000      200 OK, 100000 bytes",
				"the app in the pod served 2 requests (its own log)"} {
				if !strings.Contains(text, want) {
					t.Errorf("output lacks %q:\n%s", want, text)
				}
			}
			for _, re := range []string{`L2 on the wire \(TLS\)\s+\d+ packets`, `L3 kubelet→runtime\s+→  request 1 stream \d+ → pod "GET /bytes`, `L4 runtime→app\s+→  GET /bytes\?n=100000`} {
				if !regexp.MustCompile(re).MatchString(text) {
					t.Errorf("output lacks %s:\n%s", re, text)
				}
			}
			if regexp.MustCompile(`(?m)^\s+L2 apiserver→kubelet\s`).MatchString(text) {
				t.Errorf("a plaintext L2 leg with the real kubelet, whose TLS pftap cannot tap:\n%s", text)
			}
		})
	}
}

// TestRealKubeletTrace: pftap trace --agent deploy against a cluster whose
// node is the real kubelet: the agent pod is scheduled, its image (pftap
// agent image -o, imported into the node's containerd as on a node with no
// registry) run by containerd, and the agent finds every leg itself, as on
// a real node; trace shows L2 on the wire, L3 and L4 with no gap, then
// deletes the agent pod.
func TestRealKubeletTrace(t *testing.T) {
	apiserver, kubelet := realKubelet(t)
	bin := staticPftap(t)
	tarPath := filepath.Join(t.TempDir(), "agent.tar")
	ios, _, _ := testIO()
	if err := agentImageRun(&AgentImageOptions{IO: ios, Output: tarPath, Binary: bin, Tag: "pftap.local/agent:test"}); err != nil {
		t.Fatal(err)
	}
	l, err := lab.Start(context.Background(), lab.Config{Runtime: lab.RuntimeContainerd, APIServerBinary: apiserver, KubeletBinary: kubelet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if out, err := exec.Command("ctr", "--address", l.ContainerdAddress(), "--namespace", "k8s.io", "images", "import", "--snapshotter", "native", tarPath).CombinedOutput(); err != nil {
		t.Fatalf("ctr images import: %v\n%s", err, out)
	}
	var page string
	code, out, errOut := runTrace(t, []string{"--kubeconfig", l.Kubeconfig, "--no-color", "--agent", "deploy", "--agent-image", "pftap.local/agent:test", "pod/nginx", "0:80"},
		func(ports []trace.PortPair) {
			page = get(t, ports[0].Local, "/")
			get(t, ports[0].Local, "/bytes?n=200000")
			time.Sleep(300 * time.Millisecond)
		})
	if code != exitOK || page != lab.WelcomePage {
		t.Fatalf("exit %d, page %d bytes: %s\n%s", code, len(page), errOut, out)
	}
	for _, want := range []string{`Kubernetes v1\.37\.2`, `L3 kubelet→runtime\s+→  open data stream`, `L4 runtime→app\s+→  GET /bytes\?n=200000`, `L2 on the wire \(TLS\)`,
		`(?m)^\s+L4 runtime→app\s+\d+ packets\s+\d+ bytes\s+\d+ SPDY frames\s+0 drops\b`, `(?m)^\s+L3 kubelet→runtime\s+\d+ packets\s+\d+ bytes\s+\d+ SPDY frames\s+0 drops\b`,
		// The apiserver's own metrics, counted from after the agent's deployment.
		`while trace ran it proxied 1 WebSocket port-forward\(s\) to the kubelet as they came and translated 0`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// No gap on any leg (a retransmission on lo is not one).
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, " packets ") && strings.Contains(line, " gaps") {
			t.Errorf("a leg with gaps: %s", line)
		}
	}
	if !strings.Contains(out, "0 gaps (0 bytes)") {
		t.Errorf("the summary counts gaps:\n%s", out)
	}
	if !regexp.MustCompile(`created agent pod default/pftap-agent-[0-9a-f]+ on node pftap-lab-node`).MatchString(errOut) || !strings.Contains(errOut, "deleted agent pod") {
		t.Errorf("agent pod lines:\n%s", errOut)
	}
	// kubectl through the same node, after the agent is gone.
	f, err := kubectl.PortForward(context.Background(), kubectl.Options{Kubeconfig: l.Kubeconfig, Target: "pod/nginx", Remote: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	if got := get(t, f.Local, "/"); got != lab.WelcomePage {
		t.Errorf("kubectl after the trace: %q", got)
	}
}
