//go:build linux

package lab

import (
	"crypto/tls"
	"errors"
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
