// Package testenv holds what pftap's tests need to know about the machine
// they run on: root, and Debian tools. Outside CI a missing one skips the
// test with the reason; in CI (which runs as root after installing the
// tools) it fails, so privileged tests never skip silently there.
package testenv

import (
	"os"
	"os/exec"
	"testing"
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
