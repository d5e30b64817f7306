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
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/pftap/pftap/internal/agent"
)

// dialAgent connects to a pftap agent, authenticates and asks it to tap the
// pod; the agent's pcapng stream follows on the connection.
func dialAgent(ctx context.Context, o Options, podIP string) (net.Conn, *agent.Hello, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if o.AgentFingerprint == "" {
				return nil
			}
			if len(raw) == 0 {
				return errors.New("the agent sent no certificate")
			}
			sum := sha256.Sum256(raw[0])
			if got := hex.EncodeToString(sum[:]); got != o.AgentFingerprint {
				return fmt.Errorf("the agent's certificate is %s, not the pinned %s", got, o.AgentFingerprint)
			}
			return nil
		}}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", o.Agent)
	if err != nil {
		return nil, nil, fmt.Errorf("pftap agent at %s: %w", o.Agent, err)
	}
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if err := json.NewEncoder(c).Encode(agent.Request{Token: o.AgentToken, PodIP: podIP}); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("pftap agent at %s: %w", o.Agent, err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadSlice('\n')
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("pftap agent at %s: no answer: %w", o.Agent, err)
	}
	var h agent.Hello
	if err := json.Unmarshal(line, &h); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("pftap agent at %s: %w", o.Agent, err)
	}
	if h.Error != "" {
		c.Close()
		return nil, nil, fmt.Errorf("pftap agent at %s: %s", o.Agent, h.Error)
	}
	c.SetDeadline(time.Time{})
	return &readerConn{Conn: c, r: br}, &h, nil
}

type readerConn struct {
	net.Conn
	r io.Reader
}

func (c *readerConn) Read(b []byte) (int, error) { return c.r.Read(b) }

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
		s.send(frame{ts: ci.Timestamp, data: append([]byte(nil), data...), iface: 1 + ci.InterfaceIndex})
	}
}
