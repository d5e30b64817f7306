package main

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/internal/testenv"
	"github.com/pftap/pftap/lab"
	"github.com/pftap/pftap/trace"
)

// realAPIServer is the kube-apiserver scripts/test.sh builds from
// k8s.io/kubernetes (PFTAP_KUBE_APISERVER): the tests fail in CI without
// it and skip elsewhere.
func realAPIServer(t *testing.T) string {
	t.Helper()
	needRootCmd(t)
	bin := os.Getenv("PFTAP_KUBE_APISERVER")
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("PFTAP_KUBE_APISERVER is not set: run the tests with scripts/test.sh, which builds kube-apiserver")
		}
		t.Skip("PFTAP_KUBE_APISERVER is not set (scripts/test.sh builds kube-apiserver from k8s.io/kubernetes)")
	}
	if err := lab.EtcdInstalled(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestRealAPIServerLab: pftap lab with the real kube-apiserver as its
// control plane, with pftap's client and with kubectl (both releases):
// 200 through every leg, the chain named as run; the apiserver's own
// metrics say which path it took (proxied to a 1.37 kubelet that
// declares the feature, translated at the apiserver for a 1.35 one), and
// the timeline's L2 says the same.
func TestRealAPIServerLab(t *testing.T) {
	bin := realAPIServer(t)
	for _, tc := range []struct {
		client, kubelet, runtime string
		l2                       string
	}{
		{"pftap", "", "cri-streaming", "GET /portForward/default/nginx  upgrade=websocket"},
		{"kubectl", "", "cri-streaming", "GET /portForward/default/nginx  upgrade=websocket"},
		{"kubectl-today", "", "cri-streaming", "GET /portForward/default/nginx  upgrade=websocket"},
		{"kubectl", "1.35", "cri-streaming", "POST /portForward/default/nginx  upgrade=SPDY/3.1"},
		{"pftap", "", "containerd", "GET /portForward/default/nginx  upgrade=websocket"},
	} {
		t.Run(tc.client+"/"+tc.kubelet+"/"+tc.runtime, func(t *testing.T) {
			if tc.runtime == lab.RuntimeContainerd {
				needContainerdCmd(t)
			}
			client := tc.client
			if client == "kubectl-today" {
				// Today's kubectl, built from k8s.io/kubectl.
				old := kubectl.Path
				kubectl.Path, client = testenv.TodaysKubectl(t), "kubectl"
				defer func() { kubectl.Path = old }()
			}
			ios, out, errOut := testIO()
			opts := &LabRunOptions{IO: ios, Runtime: tc.runtime, App: "builtin", Client: client, Requests: []string{"GET /", "GET /bytes?n=100000"}, Concurrency: 1, NoColor: true}
			opts.era.binary, opts.era.kubelet = bin, tc.kubelet
			if err := opts.era.check(opts.Runtime, false); err != nil {
				t.Fatal(err)
			}
			if err := labRun(opts); err != nil {
				t.Fatalf("%v\n%s\n%s", err, errOut, out)
			}
			text := out.String()
			for _, want := range []string{"the real kube-apiserver v1.37.2", "kube-apiserver v1.37.2 (upstream's)", tc.l2,
				"GET /                    200 OK", "GET /bytes?n=100000      200 OK, 100000 bytes"} {
				if !strings.Contains(text, want) {
					t.Errorf("output lacks %q:\n%s", want, text)
				}
			}
			// The apiserver's own count of how it routed the session's
			// WebSocket.
			routed := "while the lab's session ran it proxied 1 WebSocket port-forward(s) to the kubelet as they came and translated 0 into SPDY itself"
			if tc.kubelet == "1.35" {
				routed = "while the lab's session ran it proxied 0 WebSocket port-forward(s) to the kubelet as they came and translated 1 into SPDY itself"
			}
			if !strings.Contains(text, routed) {
				t.Errorf("output lacks %q:\n%s", routed, text)
			}
			if client == "kubectl" && !strings.Contains(text, "L1 on the wire (TLS)") {
				t.Errorf("kubectl's L1 to the real apiserver is seen on the wire only:\n%s", text)
			}
		})
	}
	// The apiserver's own account of its decision.
	for _, tc := range []struct {
		kubelet lab.Version
		want    string
	}{{lab.Version{}, `proxy_type="proxied_to_kubelet"`}, {lab.Version{Minor: 35}, `proxy_type="translated_at_apiserver"`}} {
		l, err := lab.Start(context.Background(), lab.Config{APIServerBinary: bin, Kubelet: tc.kubelet})
		if err != nil {
			t.Fatal(err)
		}
		f, err := kubectl.PortForward(context.Background(), kubectl.Options{Kubeconfig: l.Kubeconfig, Target: "pod/nginx", Remote: 80})
		if err != nil {
			l.Close()
			t.Fatal(err)
		}
		page := get(t, f.Local, "/")
		f.Stop()
		lines, err := l.Metrics(context.Background(), "apiserver_websocket_streaming_requests_total")
		l.Close()
		if err != nil || page != lab.WelcomePage {
			t.Fatalf("metrics %v, page %q", err, page)
		}
		if got := strings.Join(lines, "\n"); !strings.Contains(got, `subresource="portforward"`) || !strings.Contains(got, tc.want) {
			t.Errorf("kubelet %v: metrics say\n%s\nwant %s", tc.kubelet, got, tc.want)
		}
	}
}

// TestRealAPIServerTrace: pftap trace through the real kube-apiserver;
// --agent deploy with the agent pod admitted (and run by the lab's node),
// then refused by PodSecurity; RBAC without create on pods/portforward
// diagnosed as for pftap's own apiserver.
func TestRealAPIServerTrace(t *testing.T) {
	bin := realAPIServer(t)
	l, err := lab.Start(context.Background(), lab.Config{APIServerBinary: bin})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Run("agent deploy", func(t *testing.T) {
		var page string
		code, out, errOut := runTrace(t, []string{"--kubeconfig", l.Kubeconfig, "--no-color", "--agent", "deploy", "--agent-image", "example.org/pftap:test", "pod/nginx", "0:80"},
			func(ports []trace.PortPair) {
				page = get(t, ports[0].Local, "/")
				get(t, ports[0].Local, "/")
				time.Sleep(300 * time.Millisecond)
			})
		if code != exitOK || page != lab.WelcomePage {
			t.Fatalf("exit %d, page %d bytes: %s\n%s", code, len(page), errOut, out)
		}
		for _, want := range []string{`Kubernetes v1\.37\.2`, `L3 kubelet→runtime\s+→  open data stream`, `L4 runtime→app\s+→  GET /`, `L2 on the wire \(TLS\)`} {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if !regexp.MustCompile(`created agent pod default/pftap-agent-[0-9a-f]+ on node pftap-lab-node`).MatchString(errOut) || !strings.Contains(errOut, "deleted agent pod") {
			t.Errorf("agent pod lines:\n%s", errOut)
		}
	})
	t.Run("agent refused by PodSecurity", func(t *testing.T) {
		cs := labClient(t, l)
		ctx := context.Background()
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "restricted",
			Labels: map[string]string{"pod-security.kubernetes.io/enforce": "baseline"}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// No controller-manager runs: the service account is made here.
		if _, err := cs.CoreV1().ServiceAccounts("restricted").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The pod to forward to lives in default; the agent is made in
		// the restricted namespace, where baseline forbids it.
		code, _, errOut := runTrace(t, []string{"--kubeconfig", l.Kubeconfig, "--agent", "deploy", "--agent-namespace", "restricted", "--agent-image", "example.org/pftap:test", "pod/nginx", "0:80"}, nil)
		if code != exitError || !strings.Contains(errOut, "violates PodSecurity \"baseline:latest\"") || !strings.Contains(errOut, "admission refused the agent") ||
			strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("exit %d: %s", code, errOut)
		}
		t.Logf("%s", errOut)
	})
	t.Run("RBAC forbids port-forward", func(t *testing.T) {
		denied, err := lab.Start(context.Background(), lab.Config{APIServerBinary: bin, DenyPortForward: true})
		if err != nil {
			t.Fatal(err)
		}
		defer denied.Close()
		code, out, errOut := runTrace(t, []string{"--kubeconfig", denied.Kubeconfig, "--no-color", "pod/nginx", "0:80"}, nil)
		want := "403: RBAC forbids this: the user needs the verb create (and get) on pods/portforward"
		if code != exitError || !strings.Contains(errOut, "pftap: "+want) || !strings.Contains(out, "↳ "+want) {
			t.Errorf("exit %d:\n%s\n%s", code, out, errOut)
		}
		if !strings.Contains(out, `cannot create resource \"pods/portforward\"`) && !strings.Contains(out+errOut, `cannot create resource "pods/portforward"`) {
			t.Errorf("the real apiserver's own words are not shown:\n%s\n%s", out, errOut)
		}
		// kubectl, given the same user, is refused the same way.
		_, err = kubectl.PortForward(context.Background(), kubectl.Options{Kubeconfig: denied.Kubeconfig, Target: "pod/nginx", Remote: 80})
		if err == nil || !strings.Contains(err.Error(), "403") && !strings.Contains(err.Error(), "Forbidden") && !strings.Contains(err.Error(), "forbidden") {
			t.Errorf("kubectl with get only on pods/portforward: %v", err)
		}
	})
}
