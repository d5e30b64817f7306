//go:build linux

package lab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/internal/testenv"
)

// upgradeLog records, for each connection the kubelet accepts, the request
// line and Upgrade header of its first request and the status line of the
// kubelet's answer: what L2 carried.
type upgradeLog struct {
	mu    sync.Mutex
	lines []string
}

type loggedConn struct {
	net.Conn
	log      *upgradeLog
	in, out  bytes.Buffer
	reqDone  bool
	respDone bool
	req      string
}

func (c *loggedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.reqDone && n > 0 {
		c.in.Write(p[:n])
		if i := bytes.Index(c.in.Bytes(), []byte("\r\n\r\n")); i >= 0 {
			c.reqDone = true
			sc := bufio.NewScanner(bytes.NewReader(c.in.Bytes()[:i]))
			sc.Scan()
			fields := strings.Fields(sc.Text())
			line := fields[0] + " " + strings.SplitN(fields[1], "?", 2)[0]
			for sc.Scan() {
				if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.EqualFold(k, "Upgrade") {
					line += " upgrade=" + strings.TrimSpace(v)
				}
			}
			c.req = line
		}
	}
	return n, err
}

func (c *loggedConn) Write(p []byte) (int, error) {
	if c.reqDone && !c.respDone {
		c.out.Write(p)
		if line, _, ok := bytes.Cut(c.out.Bytes(), []byte("\r\n")); ok {
			c.respDone = true
			status := strings.Fields(string(line))
			c.log.mu.Lock()
			c.log.lines = append(c.log.lines, c.req+" → "+status[1])
			c.log.mu.Unlock()
		}
	}
	return c.Conn.Write(p)
}

func (l *upgradeLog) portForwards() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.lines {
		if strings.Contains(s, "/portForward/") {
			out = append(out, strings.Replace(s, " /portForward/default/nginx", "", 1))
		}
	}
	return out
}

// TestEras runs real kubectl (the machine's, and today's built from the
// k8s.io/kubectl module) through a lab of each era and curl through it,
// and reads on the kubelet's side what L2 carried: the client's WebSocket
// (1.36+ with a declaring node), the apiserver's SPDY upgrade (1.31-1.35,
// and a 1.36 apiserver with a 1.35 kubelet), or the client's WebSocket
// refused by the kubelet and then its SPDY (before 1.31, the dockershim's
// 1.23, a stale Node status over a kubelet with the gate off).
func TestEras(t *testing.T) {
	needRoot(t)
	testenv.NeedTool(t, "curl", "curl")
	kubectls := []struct{ name, path string }{{"machine", kubectl.Path}, {"today", testenv.TodaysKubectl(t)}}
	v := func(minor int) Version { return Version{Minor: minor} }
	ws, spdy, refused := "GET upgrade=websocket → 101", "POST upgrade=SPDY/3.1 → 101", "GET upgrade=websocket → 400"
	for _, era := range []struct {
		name string
		cfg  Config
		l2   []string
	}{
		{"1.37", Config{}, []string{ws}},
		{"1.38", Config{Kubernetes: v(38)}, []string{ws}},
		{"1.36", Config{Kubernetes: v(36)}, []string{ws}},
		{"1.35", Config{Kubernetes: v(35)}, []string{spdy}},
		{"1.36-kubelet-1.35", Config{Kubernetes: v(36), Kubelet: v(35)}, []string{spdy}},
		{"1.37-gate-off", Config{KubeletGateOff: true}, []string{spdy}},
		{"1.37-gate-off-stale-status", Config{KubeletGateOff: true, StaleDeclaredFeatures: true}, []string{refused, spdy}},
		{"1.30", Config{Kubernetes: v(30)}, []string{refused, spdy}},
		{"1.23-socat", Config{Runtime: RuntimeSocat}, []string{refused, spdy}},
		{"1.37-websocket-refused", Config{RefuseWebSocket: true}, []string{spdy}},
	} {
		for _, kc := range kubectls {
			t.Run(era.name+"/"+kc.name, func(t *testing.T) {
				log := &upgradeLog{}
				cfg := era.cfg
				cfg.TapConn = func(leg string, c net.Conn) net.Conn {
					if leg != "L2" {
						return c
					}
					return &loggedConn{Conn: c, log: log}
				}
				l := startLab(t, cfg)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				f, err := kubectl.PortForward(ctx, kubectl.Options{Kubeconfig: l.Kubeconfig, Target: "pod/nginx", Remote: 80, Kubectl: kc.path})
				if err != nil {
					t.Fatal(err)
				}
				defer f.Stop()
				body, err := curl(t, "http://127.0.0.1:"+strconv.Itoa(f.Local)+"/")
				if err != nil || body != WelcomePage {
					t.Fatalf("GET / through kubectl port-forward: %v\n%s\n%s", err, body, f.Output())
				}
				if got := log.portForwards(); fmt.Sprint(got) != fmt.Sprint(era.l2) {
					t.Errorf("L2 carried %q, want %q (%s)", got, era.l2, l.Config().Era())
				}
			})
		}
	}
}

// TestEraCombinationsRefused: a combination that never existed is refused
// in one line before anything is built.
func TestEraCombinationsRefused(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Kubernetes: Version{Minor: 35}, Kubelet: Version{Minor: 36}}, "newer than its apiserver"},
		{Config{Kubernetes: Version{Minor: 37}, Kubelet: Version{Minor: 30}}, "at most three minor versions older"},
		{Config{Runtime: RuntimeSocat, Kubernetes: Version{Minor: 30}}, "removed in 1.24"},
		{Config{Kubernetes: Version{Minor: 38}, KubeletGateOff: true}, "locked on"},
		{Config{Kubernetes: Version{Minor: 35}, KubeletGateOff: true}, "no such gate"},
		{Config{Kubernetes: Version{Minor: 35}, NoWebSocket: true}, "tunnels WebSocket"},
		{Config{Kubernetes: Version{Minor: 19}}, "1.20 to 1.38"},
	} {
		err := tc.cfg.ResolveEra()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: %v, want one line with %q", tc.cfg, err, tc.want)
		}
	}
	for _, s := range []string{"1.37", "v1.37", "v1.37.2", "1.20"} {
		if _, err := ParseVersion(s); err != nil {
			t.Errorf("ParseVersion(%q): %v", s, err)
		}
	}
	for _, s := range []string{"2.0", "1", "1.x", "1.39", "1.19", ""} {
		if _, err := ParseVersion(s); err == nil {
			t.Errorf("ParseVersion(%q) passed", s)
		}
	}
}
