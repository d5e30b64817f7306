package trace

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pftap/pftap/agent"
	"github.com/pftap/pftap/internal/pki"
)

// impostor is a TLS server on 127.0.0.1 that records every byte a client
// sends it after the handshake.
type impostor struct {
	addr, fp string
	mu       sync.Mutex
	got      []byte
	l        net.Listener
}

func newImpostor(t *testing.T) *impostor {
	t.Helper()
	cert, err := agent.NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	im := &impostor{addr: l.Addr().String(), fp: pki.Fingerprint(cert), l: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				b, _ := io.ReadAll(c)
				im.mu.Lock()
				im.got = append(im.got, b...)
				im.mu.Unlock()
			}()
		}
	}()
	return im
}

func (im *impostor) received() string {
	time.Sleep(100 * time.Millisecond)
	im.mu.Lock()
	defer im.mu.Unlock()
	return string(im.got)
}

// TestDialAgentSendsNothingUnauthenticated: an impostor on the agent's
// address receives nothing, neither the token nor the request, when trace
// has no pin, a wrong pin, or a remembered pin it does not match.
func TestDialAgentSendsNothingUnauthenticated(t *testing.T) {
	im := newImpostor(t)
	known := filepath.Join(t.TempDir(), "known_agents")
	other := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, pin, remembered, want string
	}{
		{"no pin", "", "", "it presents sha256 " + im.fp + "; check that against what pftap agent printed, then pass --agent-fingerprint " + im.fp},
		{"wrong pin", other, "", "not the pinned " + other},
		{"remembered pin differs", "", other, "but " + other + " was remembered for " + im.addr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(known)
			if tc.remembered != "" {
				if err := rememberAgent(known, im.addr, tc.remembered); err != nil {
					t.Fatal(err)
				}
			}
			_, err := dialAgent(context.Background(), Options{Agent: im.addr, AgentToken: "super-secret-token-0123", AgentFingerprint: tc.pin, KnownAgents: known}, "10.0.0.1")
			if !errors.Is(err, ErrAgentNotPinned) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing") {
				t.Errorf("error %v, want ErrAgentNotPinned saying %q", err, tc.want)
			}
			if got := im.received(); got != "" {
				t.Errorf("the impostor received %q", got)
			}
		})
	}
}

// TestDialAgentRemembers: a pinned agent is remembered for its address,
// and the next dial without a pin trusts it (and only it).
func TestDialAgentRemembers(t *testing.T) {
	a, l, _ := serveAgent(t, agent.Options{})
	known := filepath.Join(t.TempDir(), "pftap", "known_agents")
	// The agent answers (here: the pod is not on this machine), which is
	// enough: it was authenticated and the token accepted.
	o := Options{Agent: l.Addr().String(), AgentToken: "a-token-long-enough", AgentFingerprint: strings.ToUpper(a.Fingerprint), KnownAgents: known}
	if _, err := dialAgent(context.Background(), o, "192.0.2.1"); err == nil || !strings.Contains(err.Error(), "not on this node") {
		t.Fatalf("pinned dial: %v", err)
	}
	// A session that failed is not remembered: nothing was tapped.
	if fp, _ := lookupKnownAgent(known, o.Agent); fp != "" {
		t.Errorf("remembered after a failed session: %s", fp)
	}
	if err := rememberAgent(known, o.Agent, a.Fingerprint); err != nil {
		t.Fatal(err)
	}
	o.AgentFingerprint = ""
	if _, err := dialAgent(context.Background(), o, "192.0.2.1"); errors.Is(err, ErrAgentNotPinned) {
		t.Errorf("remembered agent refused: %v", err)
	}
	fi, err := os.Stat(known)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("known_agents: %v %v", fi.Mode(), err)
	}
	b, _ := os.ReadFile(known)
	if strings.Count(string(b), "\n") != 1 {
		t.Errorf("known_agents:\n%s", b)
	}
}

// TestDialAgentOnce: an agent with Options.Once serves one session and
// Serve returns when it ends: a token read from a deployed agent's pod spec
// opens nothing once trace has used it.
func TestDialAgentOnce(t *testing.T) {
	a, l, served := serveAgent(t, agent.Options{Once: true})
	o := Options{Agent: l.Addr().String(), AgentToken: "a-token-long-enough", AgentFingerprint: a.Fingerprint}
	// The first session is served (and ends: the pod is not here).
	if _, err := dialAgent(context.Background(), o, "192.0.2.1"); err == nil || !strings.Contains(err.Error(), "not on this node") {
		t.Fatalf("first session: %v", err)
	}
	select {
	case err := <-served:
		if !errors.Is(err, agent.ErrSessionEnded) {
			t.Errorf("Serve: %v, want ErrSessionEnded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the agent went on serving after its one session")
	}
}

// serveAgent serves an agent with opts (a test token, no probe, a
// streaming port given) on 127.0.0.1; served gets what Serve returns.
func serveAgent(t *testing.T, opts agent.Options) (*agent.Agent, net.Listener, <-chan error) {
	t.Helper()
	opts.Token, opts.NoProbe, opts.StreamingPorts = "a-token-long-enough", true, []int{1}
	a, err := agent.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	served := make(chan error, 1)
	go func() { served <- a.Serve(l) }()
	return a, l, served
}

// TestAgentExitWhenIdle: an agent no trace uses ends with ErrIdle, even
// with an idle time shorter than its check interval.
func TestAgentExitWhenIdle(t *testing.T) {
	for _, d := range []time.Duration{time.Nanosecond, 50 * time.Millisecond} {
		_, _, served := serveAgent(t, agent.Options{ExitWhenIdle: d})
		select {
		case err := <-served:
			if !errors.Is(err, agent.ErrIdle) {
				t.Errorf("%s: Serve returned %v, want ErrIdle", d, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: the idle agent did not end", d)
		}
	}
}

// TestDialAgentOtherVersion: an agent from before protocol versions (it
// answers with a Hello that carries none, as pftap before 2026-12 did) is
// refused in one line that says what to do; a newer one too.
func TestDialAgentOtherVersion(t *testing.T) {
	for _, tc := range []struct {
		hello, want string
	}{
		{`{"node":"n1","legs":["L3 kubelet→runtime"]}`, "the agent speaks protocol 1 and this trace speaks 2 (the agent is an older pftap's)"},
		{`{"version":3,"node":"n1","legs":["L3 kubelet→runtime"]}`, "the agent speaks protocol 3 and this trace speaks 2 (the agent is a newer pftap's)"},
	} {
		cert, err := agent.NewCertificate()
		if err != nil {
			t.Fatal(err)
		}
		l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			bufioReadLine(c)
			io.WriteString(c, tc.hello+"\n")
			time.Sleep(time.Second)
		}()
		_, err = dialAgent(context.Background(), Options{Agent: l.Addr().String(), AgentToken: "a-token-long-enough", AgentFingerprint: pki.Fingerprint(cert)}, "10.0.0.1")
		if !errors.Is(err, ErrAgentVersion) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "pftap agent image") || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %v, want ErrAgentVersion saying %q and what to do", err, tc.want)
		}
	}
}

func bufioReadLine(c net.Conn) {
	b := make([]byte, 1)
	for {
		if _, err := c.Read(b); err != nil || b[0] == '\n' {
			return
		}
	}
}
