package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pftap/pftap/internal/nsenter"
	"github.com/pftap/pftap/lab"
)

// TestBadArgumentsFailFast: a mistake on the command line is one clear
// line, well under a second, before anything is built or written.
func TestBadArgumentsFailFast(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	os.WriteFile(file, []byte("x"), 0o600)
	missing := filepath.Join(dir, "no-such-dir", "s.pcapng")
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("a-long-enough-token\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"request not a path", []string{"lab", "--request", "FOO"}, exitUsage, `--request "FOO": the path must start with /`},
		{"request bad method", []string{"lab", "--request", "get /"}, exitUsage, `"get" is not an HTTP method`},
		{"request with a space", []string{"lab", "--request", "GET /a b"}, exitUsage, "not a request path"},
		{"concurrency with one request", []string{"lab", "--concurrency", "3"}, exitUsage, "--concurrency 3 with 1 request(s)"},
		{"concurrency zero", []string{"lab", "--concurrency", "0"}, exitUsage, "at least 1"},
		{"repeat zero", []string{"lab", "--repeat", "0"}, exitUsage, "--repeat 0"},
		{"header timeout", []string{"lab", "--header-timeout", "0s"}, exitUsage, "--header-timeout 0s"},
		{"client", []string{"lab", "--client", "curl"}, exitUsage, `--client "curl"`},
		{"not a number", []string{"lab", "--remote-port", "abc"}, exitUsage, `--remote-port "abc": not a number`},
		{"not a duration", []string{"lab", "--header-timeout", "5"}, exitUsage, `--header-timeout "5": not a duration like 500ms`},
		{"runtime", []string{"lab", "--runtime", "docker"}, exitUsage, `--runtime "docker"`},
		{"fault", []string{"lab", "--fault", "bogus"}, exitUsage, `--fault "bogus": want one of refused,`},
		{"fault and runtime", []string{"lab", "--fault", "runtime-dies", "--runtime", "socat"}, exitUsage, "--fault runtime-dies needs a runtime with a streaming server"},
		{"fault and era", []string{"lab", "--fault", "websocket-skew", "--kubernetes", "1.35"}, exitUsage, "--fault websocket-skew sets the versions itself"},
		{"fault and app", []string{"lab", "--fault", "app-on-pod-ip", "--app", "nginx"}, exitUsage, "--fault app-on-pod-ip needs the built-in app"},
		{"fault and containerd", []string{"lab", "--fault", "scheme-mismatch", "--runtime", "containerd"}, exitUsage, "--fault scheme-mismatch needs the lab's own streaming server"},
		{"apiserver missing", []string{"lab", "--apiserver", missing}, exitUsage, "--apiserver " + missing + ": fork/exec"},
		{"apiserver not one", []string{"lab", "--apiserver", "/bin/true"}, exitUsage, `--apiserver /bin/true: not a kube-apiserver (its --version said "true (GNU coreutils)`},
		{"containerd with a command", []string{"lab", "--runtime", "containerd", "--app", "sleep 9"}, exitUsage, "with --runtime containerd the pod runs the built-in app or nginx"},
		{"deploy without an image", []string{"trace", "--agent", "deploy", "pod/x", "80"}, exitUsage, "--agent deploy needs --agent-image"},
		{"agent image: nowhere to put it", []string{"agent", "image"}, exitUsage, "give -o FILE.tar or --push"},
		{"agent image: another platform", []string{"agent", "image", "-o", file + ".tar", "--platform", "windows/arm64"}, exitUsage, "--platform windows/arm64: the image holds this binary"},
		{"kubernetes version", []string{"lab", "--kubernetes", "2.0"}, exitUsage, `--kubernetes: "2.0" is not a Kubernetes version`},
		{"kubelet newer than apiserver", []string{"lab", "--kubernetes", "1.35", "--kubelet", "1.36"}, exitUsage, "newer than its apiserver"},
		{"socat after 1.23", []string{"lab", "--runtime", "socat", "--kubernetes", "1.30"}, exitUsage, "removed in 1.24"},
		{"write into a missing directory", []string{"lab", "-w", missing}, exitError, "does not exist"},
		{"html into a file's directory", []string{"lab", "--html", filepath.Join(file, "d.html")}, exitError, "is not a directory"},
		{"write a directory", []string{"lab", "-w", dir}, exitError, "is a directory"},
		{"trace write", []string{"trace", "-w", missing, "pod/x", "80"}, exitError, "does not exist"},
		{"trace token on the command line", []string{"trace", "--agent-token", "s3cret-s3cret-s3cret", "pod/x", "80"}, exitUsage, "visible to every user in ps"},
		{"trace agent without token", []string{"trace", "--agent", "127.0.0.1:10299", "pod/x", "80"}, exitUsage, "needs the agent's token"},
		{"trace short token", []string{"trace", "--agent", "127.0.0.1:10299", "--agent-token-file", file, "pod/x", "80"}, exitUsage, "the agent's token is 1 characters long"},
		{"trace bad fingerprint", []string{"trace", "--agent", "127.0.0.1:10299", "--agent-token-file", token, "--agent-fingerprint", "abc", "pod/x", "80"}, exitUsage, "want the 64 hex digits"},
		{"agent token on the command line", []string{"agent", "--token", "s3cret-s3cret-s3cret"}, exitUsage, "visible to every user in ps"},
		{"agent short token", []string{"agent", "--token-file", file}, exitUsage, "at least 16"},
		{"agent idle", []string{"agent", "--exit-when-idle", "-1s"}, exitUsage, "--exit-when-idle -1s"},
		{"agent listen", []string{"agent", "--listen", "::1:10299"}, exitUsage, "[::1]:10299"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadDir(dir)
			ios, _, errOut := testIO()
			start := time.Now()
			code := run(tc.args, ios)
			took := time.Since(start)
			if code != tc.code {
				t.Errorf("exit %d, want %d: %s", code, tc.code, errOut)
			}
			first := strings.SplitN(errOut.String(), "\n", 2)[0]
			if !strings.HasPrefix(first, "pftap: ") || !strings.Contains(first, tc.want) {
				t.Errorf("first line %q, want it to say %q", first, tc.want)
			}
			if tc.code == exitError && strings.Count(strings.TrimSpace(errOut.String()), "\n") != 0 {
				t.Errorf("more than one line:\n%s", errOut)
			}
			// A usage error: its line and where the usage is, not the
			// whole usage.
			if tc.code == exitUsage && (strings.Count(strings.TrimSpace(errOut.String()), "\n") != 1 || !strings.Contains(errOut.String(), "--help' for usage.")) {
				t.Errorf("a usage error in more than two lines, or without the pointer to --help:\n%s", errOut)
			}
			if took > 500*time.Millisecond {
				t.Errorf("took %s to refuse", took)
			}
			if after, _ := os.ReadDir(dir); len(after) != len(before) {
				t.Errorf("files made: %v", after)
			}
			if left, _ := nsenter.List(fmt.Sprintf("%s%d-", lab.Prefix, os.Getpid())); len(left) > 0 {
				t.Errorf("namespaces made: %v", left)
			}
		})
	}
}
