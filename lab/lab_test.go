//go:build linux

package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pftap/pftap/internal/testenv"

	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/internal/nsenter"
)

func needRoot(t testing.TB) {
	t.Helper()
	testenv.NeedRoot(t, "creates network namespaces and veths (CAP_SYS_ADMIN, CAP_NET_ADMIN)")
}

// checkGone fails the test if anything of the lab is left.
func checkGone(t testing.TB, st State) {
	t.Helper()
	if left, _ := nsenter.List(st.Name); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
	if st.HostLinkIndex != 0 && hostLinkExists(st.HostLinkIndex) {
		t.Errorf("link left behind: %s (index %d)", st.HostLink, st.HostLinkIndex)
	}
	if _, err := os.Stat(st.Dir); st.OwnDir && !os.IsNotExist(err) {
		t.Errorf("directory left behind: %s", st.Dir)
	}
	if _, err := os.Stat(filepath.Join(StateDir, st.Name+".json")); !os.IsNotExist(err) {
		t.Errorf("state file left behind")
	}
	for _, pid := range st.PIDs {
		if alive(pid) && cmdlineHas(pid, st.Name) {
			t.Errorf("process %d left behind", pid)
		}
	}
	if st.Runtime == RuntimeContainerd {
		checkContainerdGone(t, st)
	}
}

// startLab starts a lab and checks, when the test ends (also when it
// fails), that it left nothing behind.
func startLab(t testing.TB, cfg Config) *Lab {
	t.Helper()
	needRoot(t)
	l, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	st := l.state()
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		checkGone(t, st)
	})
	return l
}

func curl(t testing.TB, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("curl", append([]string{"-sS", "--max-time", "15"}, args...)...).Output()
	return string(out), err
}

// forward runs kubectl port-forward through the lab: WebSocket first, SPDY
// when the lab refuses the upgrade (Config.RefuseWebSocket, NoWebSocket).
func forward(t testing.TB, l *Lab, remote int) *kubectl.Forward {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := kubectl.PortForward(ctx, kubectl.Options{Kubeconfig: l.Kubeconfig, Target: "pod/nginx", Remote: remote})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

func TestKubectlPortForwardThroughLab(t *testing.T) {
	needRoot(t)
	for _, rt := range []string{RuntimeCRIStreaming, RuntimeContainerd, RuntimeSocat} {
		for _, app := range []string{AppBuiltin, AppNginx} {
			for _, mode := range []string{"websocket", "spdy", "websocket refused"} {
				t.Run(fmt.Sprintf("%s/%s/%s", rt, app, mode), func(t *testing.T) {
					l := startLab(t, Config{Runtime: rt, App: app, NoWebSocket: mode == "websocket refused", RefuseWebSocket: mode == "spdy"})
					f := forward(t, l, 80)
					base := "http://127.0.0.1:" + strconv.Itoa(f.Local)
					body, err := curl(t, base+"/")
					if err != nil || body != WelcomePage {
						t.Fatalf("GET / through port-forward: %v\n%s", err, body)
					}
					if app != AppBuiltin {
						// nginx works with the lab's files private: the
						// directory 0700, every file in it 0600.
						filepath.Walk(l.Dir(), func(path string, fi os.FileInfo, err error) error {
							if err != nil {
								return nil
							}
							if path == filepath.Join(l.Dir(), "containerd") {
								return filepath.SkipDir // containerd's own
							}
							want := os.FileMode(0o600)
							if fi.IsDir() {
								want = 0o700
							}
							if fi.Mode().IsRegular() || fi.IsDir() {
								if fi.Mode().Perm() != want {
									t.Errorf("%s is %v, want %v", path, fi.Mode().Perm(), want)
								}
							}
							return nil
						})
						return
					}
					body, err = curl(t, base+"/bytes?n=300000")
					if err != nil || len(body) != 300000 {
						t.Fatalf("GET /bytes: %v, %d bytes", err, len(body))
					}
					for i := range 300000 {
						if body[i] != Pattern(int64(i)) {
							t.Fatalf("byte %d is %d, want %d", i, body[i], Pattern(int64(i)))
						}
					}
					if log := l.AppLog(); len(log) != 2 || log[0].Path != "/" || log[1].Bytes != 300000 {
						t.Errorf("the app logged %+v", log)
					}
				})
			}
		}
	}
}

func TestErrorStreamWhenNothingListens(t *testing.T) {
	needRoot(t)
	for _, rt := range []string{RuntimeCRIStreaming, RuntimeSocat} {
		for _, ws := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/websocket=%v", rt, ws), func(t *testing.T) {
				l := startLab(t, Config{Runtime: rt, RefuseWebSocket: !ws})
				f := forward(t, l, 81)
				if _, err := curl(t, "http://127.0.0.1:"+strconv.Itoa(f.Local)+"/"); err == nil {
					t.Error("curl succeeded through a port where nothing listens")
				}
				select {
				case <-f.Done():
				case <-time.After(10 * time.Second):
				}
				out := f.Output()
				for _, want := range []string{"error forwarding port 81", "lost connection to pod"} {
					if !strings.Contains(out, want) {
						t.Errorf("kubectl did not say %q:\n%s", want, out)
					}
				}
				if !strings.Contains(strings.ToLower(out), "connection refused") {
					t.Errorf("kubectl did not pass on the refusal:\n%s", out)
				}
			})
		}
	}
}

// TestConcurrentCurls sends 50 requests at once through one port-forward.
func TestConcurrentCurls(t *testing.T) {
	for _, rt := range []string{RuntimeCRIStreaming, RuntimeSocat} {
		t.Run(rt, func(t *testing.T) {
			l := startLab(t, Config{Runtime: rt})
			f := forward(t, l, 80)
			var wg sync.WaitGroup
			errs := make(chan error, 50)
			for i := 0; i < 50; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					n := 1000 + i*977
					body, err := curl(t, fmt.Sprintf("http://127.0.0.1:%d/bytes?n=%d", f.Local, n))
					if err != nil || len(body) != n {
						errs <- fmt.Errorf("request %d: %v, %d of %d bytes", i, err, len(body), n)
						return
					}
					for k := 0; k < n; k++ {
						if body[k] != Pattern(int64(k)) {
							errs <- fmt.Errorf("request %d: byte %d wrong", i, k)
							return
						}
					}
				}(i)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if n := len(l.App.Log()); n != 50 {
				t.Errorf("the app served %d requests, want 50", n)
			}
		})
	}
}

// TestAppCommand: any command as the app. The app reads the request
// before it answers: an `echo pong` that exits before socat hands it "ping"
// makes socat fail its write to the pipe (EPIPE) and drop the answer, which
// happened under load. socat -t 5 on the client: its default 0.5 s after
// stdin ends is less than a reply can take when every test runs at once.
func TestAppCommand(t *testing.T) {
	l := startLab(t, Config{App: "exec socat TCP4-LISTEN:8080,fork,reuseaddr SYSTEM:'read line; echo pong'", AppPort: 8080})
	f := forward(t, l, 8080)
	out, err := exec.Command("sh", "-c", fmt.Sprintf("echo ping | socat -t 5 - TCP4:127.0.0.1:%d", f.Local)).Output()
	if err != nil || strings.TrimSpace(string(out)) != "pong" {
		applog, _ := os.ReadFile(filepath.Join(l.Dir(), "app.log"))
		t.Errorf("custom app: %v %q\nkubectl:\n%s\napp:\n%s", err, out, f.Output(), applog)
	}
}

func TestAPIServerAuthAndNotFound(t *testing.T) {
	l := startLab(t, Config{})
	ca := filepath.Join(l.Dir(), "ca.crt")
	os.WriteFile(ca, l.CA, 0o600)
	code := func(token string) string {
		out, _ := curl(t, "--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer "+token, l.APIServer.String()+"/api")
		return out
	}
	if c := code("wrong"); c != "401" {
		t.Errorf("wrong token: %s", c)
	}
	if c := code(l.Config().Token); c != "200" {
		t.Errorf("right token: %s", c)
	}
	out, err := exec.Command(kubectl.Path, "--kubeconfig", l.Kubeconfig, "port-forward", "pod/nope", "0:80").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `pods "nope" not found`) {
		t.Errorf("kubectl port-forward to a missing pod: %v\n%s", err, out)
	}
	out, err = exec.Command(kubectl.Path, "--kubeconfig", l.Kubeconfig, "get", "pods", "-o", "wide").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Running") || !strings.Contains(string(out), l.PodIP().String()) {
		t.Errorf("kubectl get pods: %v\n%s", err, out)
	}
}

func TestSubnetAlreadyRoutedIsRefused(t *testing.T) {
	l := startLab(t, Config{})
	_, err := Start(context.Background(), Config{Subnet: l.Config().Subnet})
	if err == nil || !strings.Contains(err.Error(), "already routed on this host") {
		t.Errorf("second lab on the same subnet: %v", err)
	}
	// Two labs side by side get different subnets.
	l2 := startLab(t, Config{})
	if l2.Config().Subnet == l.Config().Subnet {
		t.Error("two labs share a subnet")
	}
}

func TestStartFailureCleansUp(t *testing.T) {
	needRoot(t)
	name := fmt.Sprintf("pftap-%d-fail", os.Getpid())
	_, err := Start(context.Background(), Config{Name: name, App: "exit 3"})
	if err == nil {
		t.Fatal("a lab whose app never listens started")
	}
	checkGone(t, State{Name: name, HostLink: "pftap-none"})
}

func BenchmarkLabReadyAndGone(b *testing.B) {
	needRoot(b)
	var ready, gone time.Duration
	for i := 0; i < b.N; i++ {
		l, err := Start(context.Background(), Config{})
		if err != nil {
			b.Fatal(err)
		}
		l.Close()
		ready += l.Ready
		gone += l.Gone
	}
	b.ReportMetric(float64(ready.Microseconds())/1000/float64(b.N), "ms-ready")
	b.ReportMetric(float64(gone.Microseconds())/1000/float64(b.N), "ms-gone")
}
