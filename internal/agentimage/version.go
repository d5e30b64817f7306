package agentimage

import (
	"context"
	"debug/buildinfo"
	"os/exec"
	"strings"
	"time"
)

// BinaryVersion is the version and revision of another pftap binary (of
// this platform, as the image's must be): what its `version` says within
// timeout, else its build info's module version, else "devel".
func BinaryVersion(path string, timeout time.Duration) (ver, rev string) {
	ver = "devel"
	if bi, err := buildinfo.ReadFile(path); err == nil {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			ver = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Killed whole when it overstays.
	cmd := exec.CommandContext(ctx, path, "version")
	ownGroup(cmd)
	cmd.WaitDelay = time.Second
	if out, err := cmd.Output(); err == nil {
		// "pftap VERSION [(REVISION)] OS/ARCH GO"
		if f := strings.Fields(string(out)); len(f) >= 2 && f[0] == "pftap" {
			ver = f[1]
		}
	}
	return ver, rev
}

// Tag makes a version a valid image tag.
func Tag(v string) string {
	b := []byte(v)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 128 {
		b = b[:128]
	}
	return string(b)
}
