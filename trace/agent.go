package trace

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/pftap/pftap/agent"
)

// ErrAgentNotPinned is wrapped by the error of a connection to an agent
// whose certificate trace was not told to trust: nothing was sent to it.
var ErrAgentNotPinned = errors.New("the agent's certificate is not pinned")

// dialAgent connects to a pftap agent, makes sure it is the agent the
// user meant (its certificate's SHA-256 is the one pinned, or the one
// remembered for its address) before anything is sent, authenticates with
// the token and asks it to tap the pod; the agent's pcapng stream follows
// on the connection.
func dialAgent(ctx context.Context, o Options, podIP string) (net.Conn, *agent.Hello, error) {
	pin := o.AgentFingerprint
	remembered := false
	if pin == "" && o.KnownAgents != "" {
		if fp, err := lookupKnownAgent(o.KnownAgents, o.Agent); err == nil && fp != "" {
			pin, remembered = fp, true
		}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("the agent sent no certificate")
			}
			sum := sha256.Sum256(raw[0])
			got := hex.EncodeToString(sum[:])
			switch {
			case pin == "":
				return fmt.Errorf("%w: it presents sha256 %s; check that against what pftap agent printed, then pass --agent-fingerprint %s (nothing, not even the token, was sent to it)", ErrAgentNotPinned, got, got)
			case remembered && !strings.EqualFold(got, pin):
				return fmt.Errorf("%w: it presents sha256 %s, but %s was remembered for %s in %s: someone else may be answering there; if the agent was restarted with a new certificate, pass --agent-fingerprint %s (nothing was sent to it)", ErrAgentNotPinned, got, pin, o.Agent, o.KnownAgents, got)
			case !strings.EqualFold(got, pin):
				return fmt.Errorf("%w: it presents sha256 %s, not the pinned %s (nothing was sent to it)", ErrAgentNotPinned, got, pin)
			}
			return nil
		}}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", o.Agent)
	if err != nil {
		return nil, nil, fmt.Errorf("pftap agent at %s: %w", o.Agent, err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	enc := json.NewEncoder(c)
	if err := enc.Encode(agent.Request{Token: o.AgentToken, PodIP: podIP}); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("pftap agent at %s: %w", o.Agent, err)
	}
	br := bufio.NewReader(c)
	var h agent.Hello
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("pftap agent at %s: no answer: %w", o.Agent, err)
		}
		h = agent.Hello{}
		if err := json.Unmarshal(line, &h); err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("pftap agent at %s: %w", o.Agent, err)
		}
		if h.Probe <= 0 {
			break
		}
		// The agent finds the connections that carry this session.
		if h.Probe > 1<<20 {
			c.Close()
			return nil, nil, fmt.Errorf("pftap agent at %s: a probe of %d bytes", o.Agent, h.Probe)
		}
		if _, err := io.CopyN(io.Discard, br, int64(h.Probe)); err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("pftap agent at %s: %w", o.Agent, err)
		}
		if err := enc.Encode(agent.Request{Probed: h.Probe}); err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("pftap agent at %s: %w", o.Agent, err)
		}
	}
	if h.Error != "" {
		c.Close()
		return nil, nil, fmt.Errorf("pftap agent at %s: %s", o.Agent, h.Error)
	}
	c.SetDeadline(time.Time{})
	if o.KnownAgents != "" && !remembered && pin != "" {
		if err := rememberAgent(o.KnownAgents, o.Agent, pin); err == nil && o.Log != nil {
			fmt.Fprintf(o.Log, "pftap trace: remembered the agent at %s (sha256 %s) in %s\n", o.Agent, pin, o.KnownAgents)
		}
	}
	rc := &readerConn{Conn: c, r: br, stop: make(chan struct{})}
	go rc.keepalive()
	return rc, &h, nil
}

type readerConn struct {
	net.Conn
	r    io.Reader
	stop chan struct{}
	once sync.Once
}

func (c *readerConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// keepalive tells the agent every agent.KeepaliveEvery that trace is still
// there: an agent that hears nothing ends the session.
func (c *readerConn) keepalive() {
	t := time.NewTicker(agent.KeepaliveEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			if _, err := c.Conn.Write([]byte("\n")); err != nil {
				return
			}
		}
	}
}

func (c *readerConn) Close() error {
	c.once.Do(func() { close(c.stop) })
	return c.Conn.Close()
}

// readAgent feeds the agent's packets to the decoder, each on its leg.
func (s *Session) readAgent() {
	defer close(s.agentDone)
	r, err := pcapgo.NewNgReader(s.agent, pcapgo.NgReaderOptions{})
	if err != nil {
		s.agentErr = fmt.Errorf("pftap agent's stream: %w", err)
		return
	}
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrUnexpectedEOF) {
				s.mu.Lock()
				s.agentErr = fmt.Errorf("pftap agent's stream: %w", err)
				s.mu.Unlock()
			}
			return
		}
		s.pipe.Captured(1+ci.InterfaceIndex, ci.Timestamp, data, ci.Length)
	}
}
