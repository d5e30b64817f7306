//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pftap/pftap/internal/nsenter"
	"github.com/pftap/pftap/internal/testenv"
	"github.com/pftap/pftap/lab"
)

// buildPftap builds the pftap binary into a directory of the test's.
func buildPftap(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pftap")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// proc is a pftap process whose output is read line by line.
type proc struct {
	cmd   *exec.Cmd
	lines chan string
	all   strings.Builder
	done  chan struct{}
}

func startProc(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), lines: make(chan string, 4096), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.all.WriteString(sc.Text() + "\n")
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		close(p.lines)
	}()
	go func() { p.cmd.Wait(); pw.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// waitFor reads lines until one contains s.
func (p *proc) waitFor(t *testing.T, s string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("pftap ended before printing %q:\n%s", s, p.all.String())
			}
			if strings.Contains(l, s) {
				return
			}
		case <-deadline:
			t.Fatalf("no %q within %s:\n%s", s, within, p.all.String())
		}
	}
}

// stop sends sig and waits for the process to end; it returns how long
// that took.
func (p *proc) stop(t *testing.T, sig syscall.Signal, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("pftap did not end within %s of %s:\n%s", within, sig, p.all.String())
	}
	for range p.lines {
	}
	return time.Since(start)
}

// nothingLeft checks that no namespace, link, state file or directory of
// the process's labs is left.
func nothingLeft(t *testing.T, pid int) {
	t.Helper()
	prefix := fmt.Sprintf("%s%d-", lab.Prefix, pid)
	if left, _ := nsenter.List(prefix); len(left) > 0 {
		t.Errorf("namespaces left: %v", left)
	}
	states, _ := lab.ListStates()
	for _, st := range states {
		if st.PID == pid {
			t.Errorf("state left: %+v", st)
		}
	}
	if out, _ := exec.Command("ip", "-o", "link", "show").Output(); strings.Contains(string(out), fmt.Sprintf("pftap%d", pid)) {
		t.Errorf("links left:\n%s", out)
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	if len(dirs) > 0 {
		t.Errorf("directories left: %v", dirs)
	}
}

// TestSignalsCleanUp: INT, TERM and HUP (a closed terminal) end `pftap lab
// up` and `pftap lab` in the middle of a transfer, promptly, with nothing
// left behind.
func TestSignalsCleanUp(t *testing.T) {
	needRootCmd(t)
	bin := buildPftap(t)
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT} {
		t.Run("lab up/"+sig.String(), func(t *testing.T) {
			p := startProc(t, bin, nil, "lab", "up")
			p.waitFor(t, "is up", time.Minute)
			p.stop(t, sig, 20*time.Second)
			nothingLeft(t, p.cmd.Process.Pid)
		})
		t.Run("lab mid-transfer/"+sig.String(), func(t *testing.T) {
			p := startProc(t, bin, nil, "lab", "--no-color", "--request", "GET /bytes?n=8000000000")
			p.waitFor(t, "101 Switching Protocols", time.Minute)
			time.Sleep(300 * time.Millisecond)
			took := p.stop(t, sig, 20*time.Second)
			t.Logf("%s: ended %s after the signal", sig, took)
			if took > time.Second {
				t.Errorf("%s took %s to stop a bulk transfer", sig, took)
			}
			// One account: the body bytes the request got are the user's
			// leg's bytes from the pod, less the response's header.
			out := p.all.String()
			cut := regexp.MustCompile(`cut short after (\d+) bytes`).FindStringSubmatch(out)
			user := regexp.MustCompile(`(?m)^  user→pftap\s+\d+ packets\s+(\d+) bytes`).FindStringSubmatch(out)
			if cut == nil || user == nil {
				t.Fatalf("no cut-short count or user leg:\n%s", out)
			}
			c, _ := strconv.ParseInt(cut[1], 10, 64)
			u, _ := strconv.ParseInt(user[1], 10, 64)
			if d := u - c; d < 0 || d > 1000 {
				t.Errorf("the request got %d bytes, the user's leg carried %d", c, u)
			}
			nothingLeft(t, p.cmd.Process.Pid)
		})
	}
}

// TestLabWriteKilled: `pftap lab -w` killed by SIGKILL in the middle of a
// transfer leaves a recording that tshark and pftap read, up to the last
// packet written, and `pftap lab clean` removes the rest.
func TestLabWriteKilled(t *testing.T) {
	needRootCmd(t)
	testenv.NeedTool(t, "tshark", "tshark")
	bin := buildPftap(t)
	file := filepath.Join(t.TempDir(), "killed.pcapng")
	p := startProc(t, bin, nil, "lab", "--no-color", "-w", file, "--request", "GET /bytes?n=8000000000")
	p.waitFor(t, "101 Switching Protocols", time.Minute)
	time.Sleep(time.Second)
	p.stop(t, syscall.SIGKILL, 5*time.Second)
	if out, err := exec.Command(bin, "lab", "clean").CombinedOutput(); err != nil {
		t.Fatalf("lab clean: %v\n%s", err, out)
	}
	nothingLeft(t, p.cmd.Process.Pid)
	// A kill can land inside the write of the last block: then tshark
	// reads every whole packet and says the file was cut short, and pftap
	// decodes every whole packet and ends with its one truncation line.
	out, err := exec.Command("tshark", "-r", file, "-q", "-z", "io,stat,0").CombinedOutput()
	cutShort := strings.Contains(string(out), "cut short in the middle of a packet")
	if err != nil && !cutShort {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`\|\s+(\d+)\s+\|\s+(\d+)\s+\|`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("tshark:\n%s", out)
	}
	frames, _ := strconv.Atoi(m[1])
	if frames < 1000 {
		t.Errorf("tshark read %d frames of the killed recording", frames)
	}
	dec, err := exec.Command(bin, "decode", "--no-color", file).CombinedOutput()
	if err != nil && !(cutShort && strings.Contains(string(dec), "truncated capture")) {
		t.Fatalf("pftap decode of the killed recording: %v\n%s", err, tail(string(dec)))
	}
	// Both read the same packets; where the kill cut a record in two, the
	// two readers may count the piece differently.
	sm := regexp.MustCompile(`summary: (\d+) packets`).FindStringSubmatch(string(dec))
	if sm == nil {
		t.Fatalf("no summary:\n%s", tail(string(dec)))
	}
	packets, _ := strconv.Atoi(sm[1])
	if d := packets - frames; d != 0 && !(cutShort && d >= -1 && d <= 1) {
		t.Errorf("pftap decode read %d packets, tshark %d frames (cut short: %v):\n%s", packets, frames, cutShort, tail(string(dec)))
	}
	if !strings.Contains(string(dec), " 0 gaps") {
		t.Errorf("gaps in the killed recording:\n%s", tail(string(dec)))
	}
	rep, err := exec.Command(bin, "replay", "--no-color", file).CombinedOutput()
	if (err != nil && !cutShort) || !strings.Contains(string(rep), "request 0 stream 3 ← pod \"HTTP/1.1 200 OK\"") {
		t.Errorf("pftap replay of the killed recording: %v\n%s", err, tail(string(rep)))
	}
}

func tail(s string) string {
	if len(s) > 3000 {
		return "…" + s[len(s)-3000:]
	}
	return s
}

// TestTraceDeploySignals: `pftap trace --agent deploy` deletes its agent
// pod on INT, TERM and HUP; killed with SIGKILL it cannot, and the agent
// notices that its trace is gone and ends on its own within a minute.
func TestTraceDeploySignals(t *testing.T) {
	needRootCmd(t)
	bin := buildPftap(t)
	l, err := lab.Start(context.Background(), lab.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cs := labClient(t, l)
	agentPod := func(t *testing.T, out string) string {
		t.Helper()
		for _, line := range strings.Split(out, "\n") {
			if i := strings.Index(line, "created agent pod default/"); i >= 0 {
				return strings.Fields(line[i+len("created agent pod default/"):])[0]
			}
		}
		t.Fatalf("no agent pod created:\n%s", out)
		return ""
	}
	args := []string{"trace", "--kubeconfig", l.Kubeconfig, "--no-color", "--agent", "deploy", "--agent-image", "example.org/pftap:test", "pod/nginx", "0:80"}
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			p := startProc(t, bin, []string{"XDG_CONFIG_HOME=" + t.TempDir()}, args...)
			p.waitFor(t, "Forwarding from", time.Minute)
			p.stop(t, sig, 20*time.Second)
			name := agentPod(t, p.all.String())
			if !strings.Contains(p.all.String(), "deleted agent pod default/"+name) {
				t.Errorf("no deletion after %s:\n%s", sig, p.all.String())
			}
			if _, err := cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{}); err == nil {
				t.Errorf("the agent pod %s is still there after %s", name, sig)
			}
			if strings.Contains(p.all.String(), "remembered the agent") {
				t.Errorf("a deployed agent was remembered:\n%s", p.all.String())
			}
		})
	}
	t.Run("KILL", func(t *testing.T) {
		p := startProc(t, bin, []string{"XDG_CONFIG_HOME=" + t.TempDir()}, args...)
		p.waitFor(t, "Forwarding from", time.Minute)
		p.stop(t, syscall.SIGKILL, 5*time.Second)
		name := agentPod(t, p.all.String())
		start := time.Now()
		for {
			pod, err := cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("the agent pod: %v", err)
			}
			if pod.Status.Phase == "Succeeded" {
				t.Logf("the agent ended %s after its trace was killed", time.Since(start).Round(time.Second))
				break
			}
			if time.Since(start) > time.Minute {
				t.Fatalf("the agent pod still %s a minute after its trace was killed", pod.Status.Phase)
			}
			time.Sleep(time.Second)
		}
		// The lab's API, as a cluster's, keeps the pod object until it is
		// deleted: delete it, as a user would.
		zero := int64(0)
		cs.CoreV1().Pods("default").Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
}

// TestLabInterruptedIsNoFault: Ctrl-C in the middle of a 1 GiB GET is said
// as such (the request interrupted, the run stopped), with no diagnosis:
// the connections it resets were busy to the end. A 300 MB GET that ends
// by itself gives none either.
func TestLabInterruptedIsNoFault(t *testing.T) {
	needRootCmd(t)
	bin := buildPftap(t)
	p := startProc(t, bin, nil, "lab", "--no-color", "--request", "GET /bytes?n=1073741824")
	p.waitFor(t, "  +", 30*time.Second)
	time.Sleep(1500 * time.Millisecond)
	p.stop(t, syscall.SIGINT, 30*time.Second)
	out := p.all.String()
	for _, want := range []string{"interrupted (pftap was stopped)", "pftap: interrupted: stopped while 1 request was under way: GET /bytes?n=1073741824 ("} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, tail(out))
		}
	}
	if strings.Contains(out, "diagnosis:") || strings.Contains(out, "FAILED") {
		t.Errorf("an interrupt diagnosed as a fault:\n%s", tail(out))
	}
	if p.cmd.ProcessState.ExitCode() == 0 {
		t.Error("an interrupted run exited 0")
	}
	ios, healthy, errOut := testIO()
	if err := labRun(&LabRunOptions{IO: ios, Runtime: "cri-streaming", App: "builtin", Client: "pftap", Requests: []string{"GET /bytes?n=300000000"}, Concurrency: 1, NoColor: true}); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	if strings.Contains(healthy.String(), "diagnosis:") {
		t.Errorf("a healthy 300 MB run diagnosed:\n%s", tail(healthy.String()))
	}
}
