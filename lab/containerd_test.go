//go:build linux

package lab

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pftap/pftap/internal/nsenter"
	"github.com/pftap/pftap/leg"
)

// checkContainerdGone fails the test if a containerd lab left anything:
// a containerd, shim or container process, the sandbox's namespace, a
// cgroup, a mount under its directory.
func checkContainerdGone(t testing.TB, st State) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, _ := strconv.Atoi(strings.TrimPrefix(p, "/proc/"))
		if cmdlineHas(pid, st.Dir+"/") && !strings.Contains(procState(pid), "Z") {
			t.Errorf("process %d%s left behind", pid, procComm(pid))
		}
	}
	if st.SandboxNetns != "" {
		if _, err := os.Stat(st.SandboxNetns); err == nil {
			t.Errorf("the sandbox's namespace %s is left", st.SandboxNetns)
		}
	}
	if pids := cgroupPids("/" + st.Name); len(pids) > 0 {
		t.Errorf("processes left in the lab's cgroups: %v", pids)
	}
	if dirs := cgroupDirs("/" + st.Name); len(dirs) > 0 {
		t.Errorf("cgroups left: %v", dirs)
	}
	if m := mountsUnder(st.Dir); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
}

func needContainerd(t testing.TB) {
	t.Helper()
	needRoot(t)
	if err := ContainerdInstalled(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err) // scripts/test.sh installs it
		}
		t.Skip(err)
	}
}

// TestContainerdChain: with the containerd runtime the pod is containerd's
// (a CNI namespace with the pod IP on eth0, the app in it), L3 goes to a
// port containerd itself listens on, and the kubelet's URL comes from the
// CRI PortForward RPC: a token URL on that port.
func TestContainerdChain(t *testing.T) {
	needContainerd(t)
	l := startLab(t, Config{Runtime: RuntimeContainerd})
	byID := map[leg.ID]Leg{}
	for _, lg := range l.Legs {
		byID[lg.ID] = lg
	}
	if len(l.Legs) != 5 {
		t.Fatalf("legs: %+v", l.Legs)
	}
	l4, w := byID[leg.L4], byID[leg.Witness]
	if !strings.HasPrefix(l4.Netns, "/var/run/netns/cni-") || w.Netns != l4.Netns {
		t.Errorf("L4 and the witness are in %q and %q, want CNI's namespace", l4.Netns, w.Netns)
	}
	if w.Server.Addr() != l.PodIP() || !l.cfg.Subnet.Contains(l.PodIP()) {
		t.Errorf("pod IP %v (witness %v), not from the lab's subnet %v", l.PodIP(), w.Server, l.cfg.Subnet)
	}
	// The pod's eth0 has that address, in that namespace.
	out, err := exec.Command("nsenter", "--net="+l4.Netns, "ip", "-o", "-4", "addr", "show", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), l.PodIP().String()+"/25") {
		t.Errorf("eth0 in the sandbox: %v %s", err, out)
	}
	// Who listens on L3's port in the node's namespace: containerd.
	l3 := byID[leg.L3]
	if owner := listenerOwner(t, l.NodeNetns, l3.Server); owner != "containerd" {
		t.Errorf("L3's server %v is %q's, want containerd's", l3.Server, owner)
	}
	u, err := l.PortForwardURL()
	if err != nil || u.Host != l3.Server.String() || !strings.HasPrefix(u.Path, "/portforward/") {
		t.Errorf("PortForward URL %v (%v), want a token URL on %v", u, err, l3.Server)
	}
	// The app runs in the sandbox, as a container: its process is in the
	// lab's cgroups and in the sandbox's namespace.
	pids := cgroupPids("/" + l.cfg.Name)
	if len(pids) < 2 {
		t.Errorf("the lab's cgroups hold %v, want the pause process and the app", pids)
	}
	inSandbox := pidsInNamespaces([]string{l4.Netns})
	if len(inSandbox) < 2 {
		t.Errorf("processes in the sandbox's namespace: %v", inSandbox)
	}

	f := forward(t, l, 80)
	body, err := curl(t, "http://127.0.0.1:"+strconv.Itoa(f.Local)+"/")
	if err != nil || body != WelcomePage {
		t.Fatalf("GET / through containerd: %v\n%s", err, body)
	}
	// The app's log comes back from its container log.
	var log []AppRequest
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if log = l.AppLog(); len(log) > 0 {
			break
		}
	}
	if len(log) != 1 || log[0].Path != "/" || !strings.HasPrefix(log[0].Remote, "127.0.0.1:") {
		t.Errorf("the app logged %+v", log)
	}
}

// listenerOwner names the process listening on addr in a namespace.
func listenerOwner(t testing.TB, ns string, addr netip.AddrPort) string {
	t.Helper()
	var inode string
	nsenter.Do(ns, func() error {
		f, err := os.Open("/proc/thread-self/net/tcp")
		if err != nil {
			return err
		}
		defer f.Close()
		want := fmt.Sprintf(":%04X", addr.Port())
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) > 9 && fs[3] == "0A" && strings.HasSuffix(fs[1], want) {
				inode = fs[9]
			}
		}
		return nil
	})
	if inode == "" {
		return ""
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, p := range procs {
		if target, err := os.Readlink(p); err == nil && target == "socket:["+inode+"]" {
			pid, _ := strconv.Atoi(strings.Split(p, "/")[2])
			return strings.Trim(procComm(pid), " ()")
		}
	}
	return ""
}

// TestContainerdKilledThenClean: a containerd lab whose process is killed
// with SIGKILL leaves containerd's shims, the pod's processes, mounts, the
// sandbox's namespace and cgroups; Clean removes every one of them.
func TestContainerdKilledThenClean(t *testing.T) {
	needContainerd(t)
	if os.Getenv("PFTAP_TEST_CONTAINERD_CHILD") == "1" {
		return
	}
	cmd, st := startChildLab(t, "TestContainerdLabChild", "PFTAP_TEST_CONTAINERD_CHILD")
	name := st.Name
	if st.SandboxNetns == "" {
		t.Fatalf("the state of %s records no sandbox namespace: %+v", name, st)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	// What SIGKILL leaves: the shims and the pod live on.
	if pids := cgroupPids("/" + name); len(pids) == 0 {
		t.Errorf("expected the pod's processes to outlive the lab's process")
	}
	if _, err := os.Stat(st.SandboxNetns); err != nil {
		t.Errorf("expected the sandbox's namespace to be left: %v", err)
	}
	done, err := Clean()
	if err != nil {
		t.Errorf("clean: %v", err)
	}
	said := strings.Join(done, "\n")
	for _, want := range []string{"containerd-shim", "in cgroup /" + name, "deleted network namespace " + filepath.Base(st.SandboxNetns), "removed cgroups /" + name, "forgot lab " + name} {
		if !strings.Contains(said, want) {
			t.Errorf("clean did not say %q:\n%s", want, said)
		}
	}
	st.Alive = false
	checkGone(t, st)
}

// startChildLab runs the test child (a lab that prints "lab up: NAME" and
// waits) in a process of its own, with env=1, and returns it and the
// state its lab wrote, for a test to kill it.
func startChildLab(t *testing.T, child, env string) (*exec.Cmd, State) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.v")
	cmd.Env = append(os.Environ(), env+"=1")
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	name := ""
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "lab up: "); ok {
			name = n
			break
		}
	}
	if name == "" {
		t.Fatal("the child lab did not come up")
	}
	states, _ := ListStates()
	for _, s := range states {
		if s.Name == name {
			return cmd, s
		}
	}
	t.Fatalf("the child lab %s wrote no state", name)
	return nil, State{}
}

// TestContainerdLabChild is the lab TestContainerdKilledThenClean kills.
func TestContainerdLabChild(t *testing.T) {
	if os.Getenv("PFTAP_TEST_CONTAINERD_CHILD") != "1" {
		t.Skip("run by TestContainerdKilledThenClean")
	}
	l, err := Start(context.Background(), Config{Runtime: RuntimeContainerd})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("lab up: " + l.cfg.Name)
	time.Sleep(time.Minute)
	l.Close()
}
