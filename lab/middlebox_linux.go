//go:build linux

package lab

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"sync"
	"time"
)

// startMiddlebox serves the middlebox on the host's address of the lab's
// link and returns its URL.
func (l *Lab) startMiddlebox(a addressing, cert tls.Certificate, api *url.URL) (*url.URL, error) {
	ln, err := net.Listen("tcp", netip.AddrPortFrom(a.host, APIServerPort).String())
	if err != nil {
		return nil, err
	}
	switch l.cfg.Middlebox {
	case MiddleboxStripUpgrades:
		rp := &httputil.ReverseProxy{
			Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(api); pr.Out.Host = api.Host },
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: l.caPool, MinVersion: tls.VersionTLS12}},
			ErrorLog:  quietLog,
		}
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// What a gateway without upgrade support forwards.
			r.Header.Del("Upgrade")
			r.Header.Del("Connection")
			rp.ServeHTTP(w, r)
		})
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: quietLog}
		go srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
		l.closers = append(l.closers, srv.Close)
	case MiddleboxIdleDrop:
		r := &idleRelay{ln: ln, to: api.Host, idle: l.cfg.IdleAfter, conns: map[net.Conn]bool{}}
		go r.serve()
		l.closers = append(l.closers, r.close)
	default:
		ln.Close()
		return nil, errors.New("unknown middlebox " + l.cfg.Middlebox)
	}
	return &url.URL{Scheme: "https", Host: ln.Addr().String()}, nil
}

// idleRelay copies TCP both ways and resets a connection idle too long.
type idleRelay struct {
	ln    net.Listener
	to    string
	idle  time.Duration
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func (r *idleRelay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		go r.relay(c)
	}
}

func (r *idleRelay) relay(c net.Conn) {
	up, err := net.Dial("tcp", r.to)
	if err != nil {
		c.Close()
		return
	}
	r.mu.Lock()
	r.conns[c], r.conns[up] = true, true
	r.mu.Unlock()
	var mu sync.Mutex
	last := time.Now()
	touch := func() { mu.Lock(); last = time.Now(); mu.Unlock() }
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				touch()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			c.Close()
			up.Close()
			return
		case <-tick.C:
			mu.Lock()
			quiet := time.Since(last)
			mu.Unlock()
			if quiet >= r.idle {
				// The idle timeout: both sides reset.
				resetConn(c)
				resetConn(up)
				return
			}
		}
	}
}

func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func (r *idleRelay) close() error {
	r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		c.Close()
	}
	return nil
}

// ProxyPort is the port of the lab's HTTPS proxy on the host's address.
const ProxyPort = 3129

// startHTTPSProxy serves an HTTPS forward proxy on the host's address of
// the lab's link: TLS with the lab's certificate, then CONNECT, which it
// grants for the apiserver's address only (it sends nothing anywhere
// else), then the bytes both ways. Each connection below its TLS goes to
// Config.TapConn as leg "proxy".
func (l *Lab) startHTTPSProxy(a addressing, cert tls.Certificate, api *url.URL) (*url.URL, error) {
	ln, err := net.Listen("tcp", netip.AddrPortFrom(a.host, ProxyPort).String())
	if err != nil {
		return nil, fmt.Errorf("the HTTPS proxy's listener: %w", err)
	}
	p := &connectProxy{ln: tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}),
		allow: api.Host, tap: l.cfg.TapConn, conns: map[net.Conn]bool{}}
	go p.serve()
	l.closers = append(l.closers, p.close)
	return &url.URL{Scheme: "https", Host: ln.Addr().String()}, nil
}

// connectProxy is an HTTP CONNECT proxy for one destination.
type connectProxy struct {
	ln    net.Listener
	allow string
	tap   func(leg string, c net.Conn) net.Conn
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func (p *connectProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *connectProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = true
	}
}

func (p *connectProxy) handle(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return
		}
		tc.SetDeadline(time.Time{})
	}
	if p.tap != nil {
		c = p.tap("proxy", c)
	}
	p.track(c)
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	if req.Host != p.allow {
		// Only the lab's apiserver: nothing leaves the lab.
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	up, err := net.DialTimeout("tcp", p.allow, 10*time.Second)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	p.track(up)
	defer up.Close()
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		// What the client sent with its CONNECT is already buffered.
		io.Copy(up, br)
		if tc, ok := up.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		close(done)
	}()
	io.Copy(c, up)
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	<-done
}

func (p *connectProxy) close() error {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	return nil
}
