// Package testenv holds what pftap's tests need to know about the machine
// they run on: root, and Debian tools. Outside CI a missing one skips the
// test with the reason; in CI (which runs as root after installing the
// tools) it fails, so privileged tests never skip silently there.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pftap/pftap/internal/kubectl"
)

// NeedRoot skips (fails in CI) unless the test runs as root; why says what
// needs it, such as "creates network namespaces (CAP_SYS_ADMIN)".
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI must run as root: this test %s", why)
	}
	t.Skipf("needs root: %s", why)
}

// NeedTool skips (fails in CI) when a command is missing; pkg is the Debian
// package that provides it.
func NeedTool(t testing.TB, cmd, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(cmd)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing in CI: scripts/test.sh installs %s", cmd, pkg)
	}
	t.Skipf("%s not installed (apt-get install %s)", cmd, pkg)
	return ""
}

// TodaysKubectl returns a kubectl built from the current k8s.io/kubectl
// module (kubectl.Build): $PFTAP_TODAYS_KUBECTL, which scripts/test.sh
// builds once, or one built into the user's cache (a few minutes the first
// time). In CI it fails when that cannot be had.
func TodaysKubectl(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PFTAP_TODAYS_KUBECTL"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	dir, err := os.UserCacheDir()
	if err == nil {
		dir = filepath.Join(dir, "pftap", "kubectl-"+kubectl.ModuleVersion)
		p := filepath.Join(dir, "kubectl")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		if err = os.MkdirAll(dir, 0o755); err == nil {
			tmp, terr := os.MkdirTemp(dir, "build-")
			if terr == nil {
				defer os.RemoveAll(tmp)
				var built string
				if built, err = kubectl.Build(tmp); err == nil {
					if err = os.Rename(built, p); err == nil {
						return p
					}
				}
			} else {
				err = terr
			}
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("today's kubectl (k8s.io/kubectl %s): %v", kubectl.ModuleVersion, err)
	}
	t.Skipf("today's kubectl (k8s.io/kubectl %s) could not be built: %v", kubectl.ModuleVersion, err)
	return ""
}
