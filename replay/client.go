package replay

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	gwebsocket "github.com/gorilla/websocket"
	"github.com/moby/spdystream"
	"k8s.io/client-go/tools/portforward"

	"github.com/pftap/pftap/decode"
)

// Target is a port-forward server under test.
type Target struct {
	// URL is the port-forward endpoint: an apiserver's
	// .../pods/NAME/portforward, a kubelet's /portForward/NS/NAME, or a
	// runtime streaming server's /portforward/TOKEN; http or https.
	URL string
	// TLS configures https.
	TLS *tls.Config
	// Header is added to the upgrade request (Authorization, say).
	Header http.Header
	// Dial makes the TCP connection when set: from another network
	// namespace, through a proxy.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// WebSocket upgrades to the SPDY tunnel in WebSocket (as kubectl 1.31+
	// talks to an apiserver) instead of to SPDY/3.1.
	WebSocket bool
}

// PlayClient plays the recorded client side of every request against the
// server under test and returns the mismatches between the server's answers
// and the recorded server's, and an error when the server could not be
// reached or refused the upgrade (in a Go test, replaytest.RunClient).
func PlayClient(ctx context.Context, s *Session, target Target, opts ...Option) ([]Mismatch, error) {
	return playClient(ctx, s, target, defaults(opts))
}

func playClient(ctx context.Context, s *Session, target Target, o options) ([]Mismatch, error) {
	pfs := s.ClientLeg()
	if len(pfs) == 0 {
		return nil, errors.New("the recording has no port-forward session to replay")
	}
	var mu sync.Mutex
	var ms []Mismatch
	report := func(m Mismatch) {
		mu.Lock()
		ms = append(ms, m)
		mu.Unlock()
		if o.report != nil {
			o.report(m)
		}
	}
	num := 0
	for _, pf := range pfs {
		conn, err := upgrade(ctx, target)
		if err != nil {
			return ms, err
		}
		sc, err := spdystream.NewConnection(conn, false)
		if err != nil {
			conn.Close()
			return ms, err
		}
		done := make(chan struct{})
		go func() {
			sc.Serve(spdystream.NoOpStreamHandler)
			close(done)
		}()
		var wg sync.WaitGroup
		for _, r := range pf.Requests {
			num++
			p := newPlayer(decode.ToServer, r, num, o, report, done)
			opened := make(chan struct{})
			var once sync.Once
			p.create = func(h http.Header) (*spdystream.Stream, error) {
				defer once.Do(func() { close(opened) })
				return sc.CreateStream(h, nil, false)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer once.Do(func() { close(opened) })
				p.run()
			}()
			// Open requests in the recorded order, so that stream IDs
			// follow it; play them concurrently, as they were.
			<-opened
		}
		wg.Wait()
		sc.Close()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			conn.Close()
		}
	}
	return ms, nil
}

// upgrade connects to the target and switches to SPDY/3.1, directly or
// tunnelled in WebSocket.
func upgrade(ctx context.Context, t Target) (net.Conn, error) {
	u, err := url.Parse(t.URL)
	if err != nil {
		return nil, err
	}
	dial := t.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	}
	if t.WebSocket {
		d := gwebsocket.Dialer{NetDialContext: dial, TLSClientConfig: t.TLS, Subprotocols: []string{"SPDY/3.1+portforward.k8s.io"}, HandshakeTimeout: 10 * time.Second}
		ws := *u
		ws.Scheme = map[string]string{"https": "wss", "http": "ws"}[u.Scheme]
		c, resp, err := d.DialContext(ctx, ws.String(), t.Header)
		if err != nil {
			if resp != nil {
				return nil, fmt.Errorf("WebSocket upgrade refused: %s", resp.Status)
			}
			return nil, err
		}
		return portforward.NewTunnelingConnection("client", c), nil
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[string]string{"https": "443", "http": "80"}[u.Scheme])
	}
	c, err := dial(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "https" {
		cfg := t.TLS
		if cfg == nil {
			cfg = &tls.Config{}
		}
		cfg = cfg.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		c = tc
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	for k, vs := range t.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "SPDY/3.1")
	req.Header.Set("X-Stream-Protocol-Version", "portforward.k8s.io")
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := req.Write(c); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("SPDY upgrade refused: %s", resp.Status)
	}
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: c, r: br}, nil
	}
	return c, nil
}
