//go:build linux

package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pftap/pftap/internal/kubectl"
)

// realBinaries are the kube-apiserver and kubelet scripts/test.sh builds
// from k8s.io/kubernetes (PFTAP_KUBE_APISERVER, PFTAP_KUBELET): the tests
// fail in CI without them and skip elsewhere.
func realBinaries(t testing.TB) (apiserver, kubelet string) {
	t.Helper()
	needContainerd(t)
	apiserver, kubelet = os.Getenv("PFTAP_KUBE_APISERVER"), os.Getenv("PFTAP_KUBELET")
	if apiserver == "" || kubelet == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("PFTAP_KUBE_APISERVER or PFTAP_KUBELET is not set: scripts/test.sh builds both")
		}
		t.Skip("PFTAP_KUBE_APISERVER or PFTAP_KUBELET is not set (scripts/test.sh builds them from k8s.io/kubernetes)")
	}
	if err := EtcdInstalled(); err != nil {
		t.Fatal(err)
	}
	return apiserver, kubelet
}

// hostTouched is what a real kubelet changes outside the lab's directory:
// the kernel settings, and which of its fixed directories exist.
func hostTouched(t testing.TB) string {
	t.Helper()
	s, err := readSysctls()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, k := range kubeletSysctls {
		fmt.Fprintf(&b, "%s=%s ", k, s[k])
	}
	for _, d := range kubeletFixedDirs {
		_, err := os.Stat(d)
		fmt.Fprintf(&b, "%s:%v ", d, err == nil)
	}
	return b.String()
}

// TestRealKubelet: the real kubelet as the lab's node, beside the real
// kube-apiserver and containerd: it registers the node (Ready, its version,
// the feature it declares), runs the pod made through the API, and serves
// port-forward on :10250 to both kubectls (200, the app's log); with its
// gate off, the apiserver tunnels instead (its metrics say which). At exit
// the kernel settings it changed are back, its fixed paths gone, and no
// process the lab started is left.
func TestRealKubelet(t *testing.T) {
	apiserver, kubelet := realBinaries(t)
	before := hostTouched(t)
	for _, gateOff := range []bool{false, true} {
		t.Run(fmt.Sprintf("gate-off=%v", gateOff), func(t *testing.T) {
			l, err := Start(context.Background(), Config{Runtime: RuntimeContainerd, APIServerBinary: apiserver, KubeletBinary: kubelet, KubeletGateOff: gateOff})
			if err != nil {
				t.Fatalf("lab: %v", err)
			}
			st, dir := l.state(), l.Dir()
			closed := false
			defer func() {
				if !closed {
					l.Close()
				}
			}()
			if l.KubeletVersion() != "v1.37.2" || l.Config().Kubelet != (Version{Minor: 37}) {
				t.Errorf("kubelet %q, lab era %v", l.KubeletVersion(), l.Config().Kubelet)
			}
			if during := hostTouched(t); during == before && !strings.Contains(before, "kernel/panic=10 ") {
				t.Errorf("the real kubelet changed nothing on the host? %s", during)
			}
			node, err := l.realAPI.cs.CoreV1().Nodes().Get(context.Background(), labNodeName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			declares := slices.Contains(node.Status.DeclaredFeatures, FeatureExtendWebSocketsToKubelet)
			if node.Status.NodeInfo.KubeletVersion != "v1.37.2" || declares == gateOff {
				t.Errorf("node %s: kubelet %s, declared features %v (gate off: %v)", node.Name, node.Status.NodeInfo.KubeletVersion, node.Status.DeclaredFeatures, gateOff)
			}
			for _, kc := range []string{kubectl.Path, os.Getenv("PFTAP_TODAYS_KUBECTL")} {
				if kc == "" {
					if os.Getenv("CI") != "" {
						t.Fatal("PFTAP_TODAYS_KUBECTL is not set")
					}
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				f, err := kubectl.PortForward(ctx, kubectl.Options{Kubeconfig: l.Kubeconfig, Target: "pod/nginx", Remote: 80, Kubectl: kc})
				cancel()
				if err != nil {
					t.Fatalf("%s port-forward: %v", kc, err)
				}
				out, err := exec.Command("curl", "-sS", "--max-time", "15", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "http://127.0.0.1:"+strconv.Itoa(f.Local)+"/bytes?n=12345").Output()
				f.Stop()
				if err != nil || string(out) != "200 12345" {
					t.Errorf("curl through %s and the real kubelet: %v %q", kc, err, out)
				}
			}
			if log := l.AppLog(); len(log) < 1 || log[0].Path != "/bytes?n=12345" {
				t.Errorf("the app's log (its container's, written by the real kubelet's runtime): %+v", log)
			}
			want := "proxied_to_kubelet"
			if gateOff {
				want = "translated_at_apiserver"
			}
			lines, err := l.Metrics(context.Background(), "apiserver_websocket_streaming_requests_total")
			if err != nil || !strings.Contains(strings.Join(lines, "\n"), want) {
				t.Errorf("the apiserver's metrics do not say %s: %v\n%s", want, err, strings.Join(lines, "\n"))
			}
			if err := l.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			closed = true
			checkGone(t, st)
			if after := hostTouched(t); after != before {
				t.Errorf("the host after the lab:\n%s\nbefore:\n%s", after, before)
			}
			if left := labProcesses(dir); len(left) > 0 {
				t.Errorf("processes of the lab left at its exit: %v", left)
			}
			if left := cgroupPids("/" + st.Name); len(left) > 0 {
				t.Errorf("processes in the lab's cgroups left at its exit: %v", left)
			}
			if m := mountsUnder(dir); len(m) > 0 {
				t.Errorf("mounts left: %v", m)
			}
		})
	}
}

// TestRealKubeletKilledThenClean: a lab with the real kubelet killed with
// SIGKILL leaves the kubelet's kernel settings and its pod; lab clean puts
// the settings back and removes everything.
func TestRealKubeletKilledThenClean(t *testing.T) {
	realBinaries(t)
	if os.Getenv("PFTAP_TEST_KUBELET_CHILD") == "1" {
		return
	}
	before := hostTouched(t)
	cmd, st := startChildLab(t, "TestRealKubeletLabChild", "PFTAP_TEST_KUBELET_CHILD")
	name := st.Name
	if st.Sysctls == nil {
		t.Fatalf("the state of %s records no kernel settings: %+v", name, st)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	done, err := Clean()
	if err != nil {
		t.Errorf("clean: %v", err)
	}
	said := strings.Join(done, "\n")
	for _, want := range []string{"kubelet", "removed cgroups /" + name, "forgot lab " + name} {
		if !strings.Contains(said, want) {
			t.Errorf("clean did not say %q:\n%s", want, said)
		}
	}
	st.Alive = false
	checkGone(t, st)
	if after := hostTouched(t); after != before {
		t.Errorf("the host after lab clean:\n%s\nbefore:\n%s", after, before)
	}
	if left := cgroupPids("/" + name); len(left) > 0 {
		t.Errorf("processes in the lab's cgroups after clean: %v", left)
	}
	links, _ := filepath.Glob("/var/log/containers/*")
	for _, ln := range links {
		if tgt, _ := os.Readlink(ln); strings.Contains(tgt, name) {
			t.Errorf("a container log link of the dead lab is left: %s", ln)
		}
	}
}

// TestRealKubeletLabChild is the lab TestRealKubeletKilledThenClean kills.
func TestRealKubeletLabChild(t *testing.T) {
	if os.Getenv("PFTAP_TEST_KUBELET_CHILD") != "1" {
		t.Skip("run by TestRealKubeletKilledThenClean")
	}
	apiserver, kubelet := realBinaries(t)
	l, err := Start(context.Background(), Config{Runtime: RuntimeContainerd, APIServerBinary: apiserver, KubeletBinary: kubelet})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("lab up: " + l.cfg.Name)
	time.Sleep(time.Minute)
	l.Close()
}
