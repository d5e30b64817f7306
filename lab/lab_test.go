package lab

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/internal/nsenter"
)

// needRoot skips outside CI when not root, and fails in CI, which runs as
// root so that these tests always run there.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI must run as root: this test creates network namespaces")
	}
	t.Skip("needs root: creates network namespaces (CAP_SYS_ADMIN)")
}

// startLab starts a lab and checks, when the test ends, that it left no
// namespace or file behind.
func startLab(t *testing.T, cfg Config) *Lab {
	t.Helper()
	needRoot(t)
	l, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	name, dir := l.Config().Name, l.dir
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if left, _ := nsenter.List(name); len(left) > 0 {
			t.Errorf("namespaces left behind: %v", left)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("directory left behind: %s", dir)
		}
	})
	return l
}

func curl(t *testing.T, url string) (string, error) {
	t.Helper()
	out, err := exec.Command("curl", "-sS", "--max-time", "15", url).Output()
	return string(out), err
}

func TestKubectlPortForwardThroughLab(t *testing.T) {
	for _, tc := range []struct {
		name        string
		websocket   bool
		noWebSocket bool
	}{
		{"websocket", true, false},
		{"spdy", false, false},
		{"websocket refused, fallback to spdy", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := startLab(t, Config{NoWebSocket: tc.noWebSocket})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			f, err := kubectl.PortForward(ctx, kubectl.Options{Kubeconfig: l.Kubeconfig, Target: "pod/nginx", Remote: 80, WebSocket: tc.websocket})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Stop()
			base := "http://127.0.0.1:" + strconv.Itoa(f.Local)
			body, err := curl(t, base+"/")
			if err != nil || body != WelcomePage {
				t.Fatalf("GET / through port-forward: %v\n%s", err, body)
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
			if log := l.App.Log(); len(log) != 2 || log[0].Path != "/" || log[1].Bytes != 300000 {
				t.Errorf("the app logged %+v", log)
			}
		})
	}
}

func TestErrorStreamWhenNothingListens(t *testing.T) {
	for _, ws := range []bool{false, true} {
		t.Run("websocket="+strconv.FormatBool(ws), func(t *testing.T) {
			l := startLab(t, Config{})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			f, err := kubectl.PortForward(ctx, kubectl.Options{Kubeconfig: l.Kubeconfig, Target: "pod/nginx", Remote: 81, WebSocket: ws})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Stop()
			if _, err := curl(t, "http://127.0.0.1:"+strconv.Itoa(f.Local)+"/"); err == nil {
				t.Error("curl succeeded through a port where nothing listens")
			}
			select {
			case <-f.Done():
			case <-time.After(10 * time.Second):
			}
			out := f.Output()
			for _, want := range []string{"error forwarding port 81", "connection refused", "lost connection to pod"} {
				if !strings.Contains(out, want) {
					t.Errorf("kubectl did not say %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestUnknownPodIs404(t *testing.T) {
	l := startLab(t, Config{})
	out, err := exec.Command(kubectl.Path, "--kubeconfig", l.Kubeconfig, "port-forward", "pod/nope", "0:80").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `pods "nope" not found`) {
		t.Errorf("kubectl port-forward to a missing pod: %v\n%s", err, out)
	}
}

func TestBearerToken(t *testing.T) {
	l := startLab(t, Config{Token: NewToken()})
	out, err := exec.Command("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer wrong", l.APIServer.String()+"/api").Output()
	if err != nil || string(out) != "401" {
		t.Errorf("wrong token: %v %s", err, out)
	}
	out, err = exec.Command("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer "+l.Config().Token, l.APIServer.String()+"/api").Output()
	if err != nil || string(out) != "200" {
		t.Errorf("right token: %v %s", err, out)
	}
}
