//go:build linux

package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pftap/pftap/internal/testenv"

	"github.com/pftap/pftap/internal/nsenter"
	"github.com/pftap/pftap/lab"
)

func needRootCmd(t *testing.T) {
	t.Helper()
	testenv.NeedRoot(t, "builds a lab (network namespaces, veths, packet sockets)")
}

// TestLabUpKilledThenClean starts `pftap lab up` as a process, kills it with
// SIGKILL (no chance to clean up), and checks that `pftap lab clean`
// removes every namespace, link, process and file it left.
func TestLabUpKilledThenClean(t *testing.T) {
	needRootCmd(t)
	bin := filepath.Join(t.TempDir(), "pftap")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "lab", "up", "--app", "nginx", "--runtime", "socat")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() || !strings.Contains(sc.Text(), "is up") {
		cmd.Process.Kill()
		t.Fatalf("lab up: %q", sc.Text())
	}
	states, _ := lab.ListStates()
	var st lab.State
	for _, s := range states {
		if s.PID == cmd.Process.Pid {
			st = s
		}
	}
	if st.Name == "" {
		t.Fatal("no state file for the running lab")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if left, _ := nsenter.List(st.Name); len(left) != 3 {
		t.Fatalf("after SIGKILL the lab should have left its 3 namespaces, found %v", left)
	}

	// nginx's master died with pftap (parent-death signal), but its
	// worker lives on in the pod's namespace: clean must end it too.
	pidsOut, _ := exec.Command("ip", "netns", "pids", st.Name+"-pod").Output()
	inPod := strings.Fields(string(pidsOut))
	if len(inPod) == 0 {
		t.Errorf("expected nginx's worker still in the pod")
	}
	ios, stdout, _ := testIO()
	if code := run([]string{"lab", "clean"}, ios); code != exitOK {
		t.Fatalf("lab clean exit %d", code)
	}
	if !strings.Contains(stdout.String(), "deleted network namespace "+st.Name+"-pod") {
		t.Errorf("lab clean said:\n%s", stdout)
	}
	if left, _ := nsenter.List(st.Name); len(left) > 0 {
		t.Errorf("namespaces left: %v", left)
	}
	if out, _ := exec.Command("ip", "-o", "link", "show", st.HostLink).CombinedOutput(); !strings.Contains(string(out), "does not exist") {
		t.Errorf("host link left: %s", out)
	}
	for _, pid := range st.PIDs {
		if b, err := os.ReadFile("/proc/" + itoa(pid) + "/cmdline"); err == nil && strings.Contains(string(b), st.Name) {
			t.Errorf("process %d left: %s", pid, b)
		}
	}
	for _, pid := range inPod {
		if _, err := os.Stat("/proc/" + pid); err == nil {
			b, _ := os.ReadFile("/proc/" + pid + "/stat")
			if !strings.Contains(string(b), ") Z ") {
				t.Errorf("process %s of the pod left: %s", pid, b)
			}
		}
	}
	if _, err := os.Stat(st.Dir); !os.IsNotExist(err) {
		t.Errorf("directory left: %s", st.Dir)
	}
	ios, stdout, _ = testIO()
	run([]string{"lab", "clean"}, ios)
	if strings.TrimSpace(stdout.String()) != "nothing to clean" {
		t.Errorf("second clean: %s", stdout)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// needContainerdCmd skips a test that runs the containerd daemon where it
// is not installed, and fails it in CI, where scripts/test.sh installs it.
func needContainerdCmd(t *testing.T) {
	t.Helper()
	needRootCmd(t)
	if err := lab.ContainerdInstalled(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}
