//go:build linux

package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pftap/pftap/internal/nsenter"
)

// TestRealAPIServerCurl: kubectl port-forward through the real
// kube-apiserver (PFTAP_KUBE_APISERVER, built by scripts/test.sh), curl
// through the forward; everything removed after.
func TestRealAPIServerCurl(t *testing.T) {
	needRoot(t)
	bin := os.Getenv("PFTAP_KUBE_APISERVER")
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("PFTAP_KUBE_APISERVER is not set: scripts/test.sh builds kube-apiserver")
		}
		t.Skip("PFTAP_KUBE_APISERVER is not set (scripts/test.sh builds kube-apiserver from k8s.io/kubernetes)")
	}
	l := startLab(t, Config{APIServerBinary: bin, App: AppNginx})
	if l.APIServerVersion() != "v1.37.2" || l.Config().Kubernetes != (Version{Minor: 37}) {
		t.Errorf("version %q, lab era %v", l.APIServerVersion(), l.Config().Kubernetes)
	}
	f := forward(t, l, 80)
	body, err := curl(t, "http://127.0.0.1:"+strconv.Itoa(f.Local)+"/")
	if err != nil || body != WelcomePage {
		t.Fatalf("curl through kubectl through kube-apiserver: %v\n%s", err, body)
	}
}

// TestFailedLateStartCleansUp: a start that fails once the lab is half
// built (a kube-apiserver that exits at once) returns its error and
// removes what it made; the closers that refer to the lab run while the
// start returns nil (they once dereferenced the nil result).
func TestFailedLateStartCleansUp(t *testing.T) {
	needRoot(t)
	if err := EtcdInstalled(); err != nil {
		t.Skip(err)
	}
	bin := filepath.Join(t.TempDir(), "kube-apiserver")
	script := "#!/bin/sh\ncase \"$1\" in\n--version) echo 'Kubernetes v1.37.2';;\n--help) printf 'Usage:\\n  kube-apiserver [flags]\\n';;\n*) echo 'refusing to start' >&2; exit 1;;\nesac\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("%s%d-late", Prefix, os.Getpid())
	l, err := Start(context.Background(), Config{Name: name, APIServerBinary: bin})
	if err == nil || l != nil || !strings.Contains(err.Error(), "kube-apiserver exited at start") {
		t.Fatalf("lab %v, error %v", l, err)
	}
	if left, _ := nsenter.List(name); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
	if _, err := os.Stat(filepath.Join(StateDir, name+".json")); !os.IsNotExist(err) {
		t.Errorf("state file left behind")
	}
}
