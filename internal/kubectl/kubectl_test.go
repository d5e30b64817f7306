package kubectl

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeKubectl writes a script that, as kubectl does, fails with "address
// already in use" the first taken times it runs, then forwards.
func fakeKubectl(t *testing.T, taken int) (bin, log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "runs")
	bin = filepath.Join(dir, "kubectl")
	script := `#!/bin/sh
echo "$@" >> ` + log + `
n=$(wc -l < ` + log + `)
if [ "$n" -le ` + strconv.Itoa(taken) + ` ]; then
	echo "Unable to listen on port: bind: address already in use" >&2
	exit 1
fi
echo "Forwarding from 127.0.0.1:1 -> 80"
exec sleep 30
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, log
}

func TestPortForwardPicksAnotherPortWhenTaken(t *testing.T) {
	bin, log := fakeKubectl(t, 2)
	f, err := PortForward(context.Background(), Options{Kubectl: bin, Kubeconfig: "k", Target: "pod/p", Remote: 80, Ready: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	b, _ := os.ReadFile(log)
	runs := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(runs) != 3 {
		t.Fatalf("kubectl ran %d times, want 3 (two ports taken):\n%s", len(runs), b)
	}
	if !strings.Contains(runs[2], ":80") || !strings.HasSuffix(runs[2], strconv.Itoa(f.Local)+":80") {
		t.Errorf("the forward says port %d; kubectl was last given %q", f.Local, runs[2])
	}
}

func TestPortForwardGivesUpAfterTries(t *testing.T) {
	bin, log := fakeKubectl(t, bindTries)
	_, err := PortForward(context.Background(), Options{Kubectl: bin, Kubeconfig: "k", Target: "pod/p", Remote: 80, Ready: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("err = %v, want kubectl's bind error", err)
	}
	b, _ := os.ReadFile(log)
	if n := strings.Count(string(b), "\n"); n != bindTries {
		t.Errorf("kubectl ran %d times, want %d", n, bindTries)
	}
}

func TestPortForwardGivenPortIsNotRetried(t *testing.T) {
	bin, log := fakeKubectl(t, 1)
	if _, err := PortForward(context.Background(), Options{Kubectl: bin, Kubeconfig: "k", Target: "pod/p", Remote: 80, Local: 12345, Ready: 5 * time.Second}); err == nil {
		t.Fatal("a taken port the caller chose was retried")
	}
	b, _ := os.ReadFile(log)
	if n := strings.Count(string(b), "\n"); n != 1 {
		t.Errorf("kubectl ran %d times, want 1", n)
	}
}

func TestFreePortBelowEphemeralRange(t *testing.T) {
	lo := ephemeralLow()
	if lo <= 11000 {
		t.Skipf("the ephemeral range starts at %d", lo)
	}
	for range 20 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if p < 10000 || p >= lo {
			t.Fatalf("FreePort = %d, want in [10000, %d)", p, lo)
		}
	}
}
