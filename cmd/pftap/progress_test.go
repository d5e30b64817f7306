package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/pftap/pftap/internal/testenv"
)

// TestLabProgress: on a terminal (script(1) gives pftap one), a long lab
// transfer keeps one status line updated on stderr (elapsed, bytes and
// rate per leg, drops) and removes it before the summaries; piped, there
// is none.
func TestLabProgress(t *testing.T) {
	needRootCmd(t)
	script := testenv.NeedTool(t, "script", "bsdutils")
	bin := staticPftap(t)
	run := bin + " lab --no-color --request 'GET /bytes?n=200000000'"
	out, err := exec.Command(script, "-qfec", run, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	tty := string(out)
	updates := strings.Count(tty, "\r\x1b[K") // each draw, and each clear
	if updates < 4 || !strings.Contains(tty, "MiB/s") || !strings.Contains(tty, "drops 0") || !strings.Contains(tty, " L4 ") {
		t.Errorf("%d status line updates on a terminal:\n%q", updates, tty[:min(len(tty), 2000)])
	}
	// The summaries come after the line is gone.
	last := strings.LastIndex(tty, "\r\x1b[K")
	if i := strings.Index(tty, "requests sent through the port-forward's local port"); i < last {
		t.Errorf("the status line was drawn after the summaries began")
	}
	piped, err := exec.Command("sh", "-c", run+" 2>&1 | cat").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, piped)
	}
	if strings.Contains(string(piped), "\x1b[K") || strings.Contains(string(piped), "MiB/s  L1") {
		t.Errorf("a status line when piped:\n%s", piped)
	}
}
