package agentimage

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBinaryVersionKillsWhatItStarted: a binary that hangs when asked
// its version, with a child of its own, is killed whole at the timeout,
// and nothing it started outlives BinaryVersion.
func TestBinaryVersionKillsWhatItStarted(t *testing.T) {
	dir := t.TempDir()
	sleeper := filepath.Join(dir, "sleeper")
	sl, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(sl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sleeper, b, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "pftap")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+sleeper+" 300 &\nexec "+sleeper+" 301\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() { v, _ := BinaryVersion(bin, 300*time.Millisecond); done <- v }()
	select {
	case v := <-done:
		if v != "devel" {
			t.Errorf("version %q, want devel", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("BinaryVersion waited on, past its timeout")
	}
	// What is still running from dir (its child, if the group was not
	// killed), gone within a moment of the kill.
	var left []string
	for range 50 {
		left = left[:0]
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			c, _ := os.ReadFile(p)
			if strings.HasPrefix(string(c), sleeper) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range left {
		if pid, err := strconv.Atoi(strings.Split(p, "/")[2]); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	t.Errorf("left running: %v", left)
}
