package kubectl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Path is the kubectl binary used by default: $PFTAP_KUBECTL, else the
// kubectl on PATH, else /usr/bin/kubectl.
var Path = kubectlPath()

func kubectlPath() string {
	if p := os.Getenv("PFTAP_KUBECTL"); p != "" {
		return p
	}
	if p, err := exec.LookPath("kubectl"); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
		return p
	}
	return "/usr/bin/kubectl"
}

// Version is what the kubectl at path says its client version is
// ("v1.32.3"), or "" when it cannot be run.
func Version(path string) string {
	versionMu.Lock()
	defer versionMu.Unlock()
	if v, ok := versions[path]; ok {
		return v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, "version", "--client", "-o", "json").Output()
	var v struct {
		ClientVersion struct {
			GitVersion string `json:"gitVersion"`
		} `json:"clientVersion"`
	}
	json.Unmarshal(out, &v)
	versions[path] = v.ClientVersion.GitVersion
	return v.ClientVersion.GitVersion
}

var (
	versionMu sync.Mutex
	versions  = map[string]string{}
)

// Forward is a running `kubectl port-forward`.
type Forward struct {
	// Local is the local port kubectl listens on (127.0.0.1).
	Local int
	cmd   *exec.Cmd
	mu    sync.Mutex
	out   strings.Builder
	done  chan struct{}
	err   error
}

// Options for PortForward.
type Options struct {
	Kubeconfig string
	// Target is what to forward to, such as "pod/nginx".
	Target string
	Remote int
	// Local is the local port; 0 picks a free one.
	Local int
	// Ready bounds the wait for "Forwarding from"; default 20 s.
	Ready time.Duration
	// Kubectl is the binary to run (default: Path).
	Kubectl string
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// It is picked below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range) where it can be, so that no outgoing
// connection's source port (curl's, a parallel test's) takes it between
// this check and the bind of whoever asked for it.
func FreePort() (int, error) {
	if lo := ephemeralLow(); lo > 10000+1000 {
		for range 50 {
			p := 10000 + rand.IntN(lo-10000)
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err == nil {
				l.Close()
				return p, nil
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralLow is the lowest port of the kernel's ephemeral range, or 0.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return lo
}

// bindTries is how often PortForward picks another local port when
// kubectl finds the one it was given taken.
const bindTries = 5

// PortForward starts kubectl and waits until it forwards. With Local 0
// it picks a free port, and another when kubectl finds it taken.
func PortForward(ctx context.Context, o Options) (*Forward, error) {
	if o.Local != 0 {
		return portForward(ctx, o, o.Local)
	}
	for try := 1; ; try++ {
		local, err := FreePort()
		if err != nil {
			return nil, err
		}
		f, err := portForward(ctx, o, local)
		if err == nil || try == bindTries || !errors.Is(err, errPortTaken) {
			return f, err
		}
	}
}

// errPortTaken is kubectl exiting because its local port was taken.
var errPortTaken = errors.New("the local port was taken")

func portForward(ctx context.Context, o Options, local int) (*Forward, error) {
	f := &Forward{Local: local, done: make(chan struct{})}
	bin := o.Kubectl
	if bin == "" {
		bin = Path
	}
	f.cmd = exec.Command(bin, "--kubeconfig", o.Kubeconfig, "port-forward", "--address", "127.0.0.1", o.Target,
		fmt.Sprintf("%d:%d", local, o.Remote))
	// kubectl as it runs by default: WebSocket first (1.31 and later),
	// SPDY when the upgrade is refused. KUBECTL_PORT_FORWARD_WEBSOCKETS,
	// which kubectl 1.38 no longer reads, is not passed on.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUBECTL_PORT_FORWARD_WEBSOCKETS=") {
			f.cmd.Env = append(f.cmd.Env, kv)
		}
	}
	stdout, err := f.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	f.cmd.Stderr = &lockedWriter{f}
	if err := f.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start kubectl: %w", err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		var once sync.Once
		for sc.Scan() {
			f.write(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "Forwarding from") {
				once.Do(func() { close(ready) })
			}
		}
		f.err = f.cmd.Wait()
		close(f.done)
	}()
	wait := o.Ready
	if wait == 0 {
		wait = 20 * time.Second
	}
	select {
	case <-ready:
		return f, nil
	case <-f.done:
		if out := f.Output(); strings.Contains(out, "address already in use") {
			return nil, fmt.Errorf("kubectl port-forward exited: %v: %s: %w", f.err, out, errPortTaken)
		}
		return nil, fmt.Errorf("kubectl port-forward exited: %v: %s", f.err, f.Output())
	case <-time.After(wait):
	case <-ctx.Done():
	}
	f.Stop()
	return nil, fmt.Errorf("kubectl port-forward did not get ready: %s", f.Output())
}

type lockedWriter struct{ f *Forward }

func (w *lockedWriter) Write(p []byte) (int, error) { w.f.write(string(p)); return len(p), nil }

func (f *Forward) write(s string) {
	f.mu.Lock()
	f.out.WriteString(s)
	f.mu.Unlock()
}

// Output returns what kubectl printed so far (stdout and stderr).
func (f *Forward) Output() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.String()
}

// Done is closed when kubectl has exited.
func (f *Forward) Done() <-chan struct{} { return f.done }

// Stop interrupts kubectl (as Ctrl-C does) and waits for it, killing it
// after 5 s.
func (f *Forward) Stop() {
	select {
	case <-f.done:
		return
	default:
	}
	f.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
		f.cmd.Process.Kill()
		<-f.done
	}
}

// ModuleVersion is the k8s.io/kubectl module internal/tools/kubectl builds
// today's kubectl from (its go.mod says the same).
const ModuleVersion = "v0.37.2"

// Build builds today's kubectl from the k8s.io/kubectl module
// (internal/tools/kubectl, with kubectl's usual main) into dir and returns
// its path. It needs the Go toolchain and the module proxy (or a warm
// module cache), and the pftap source tree this package was built from.
func Build(dir string) (string, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("kubectl.Build: cannot find pftap's source tree")
	}
	src := filepath.Join(filepath.Dir(self), "..", "tools", "kubectl")
	out := filepath.Join(dir, "kubectl")
	// As a release build says its version: 1.<minor of the module>.
	minor := strings.Split(strings.TrimPrefix(ModuleVersion, "v0."), ".")[0]
	patch := strings.Split(ModuleVersion, ".")[2]
	git := "v1." + minor + "." + patch
	ldflags := "-s -w -X k8s.io/component-base/version.gitVersion=" + git +
		" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=" + minor +
		" -X k8s.io/client-go/pkg/version.gitVersion=" + git
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building kubectl from k8s.io/kubectl %s: %v\n%s", ModuleVersion, err, b)
	}
	return out, nil
}
