package replay

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/spdystream"
	proxyutil "k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/client-go/rest"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/internal/fakeapi"
	"github.com/pftap/pftap/internal/pki"
)

// APIServer is a recorded apiserver: it answers a port-forward client as
// the recorded apiserver answered the recorded client.
type APIServer struct {
	// URL is the server's https:// address.
	URL string
	// Config is a client-go configuration for it (CA and bearer token).
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file for it, for kubectl.
	Kubeconfig string
	// CA is the PEM certificate of the CA that signed its certificate.
	CA []byte
	// Token is the bearer token it requires.
	Token string

	s      *Session
	opts   options
	ln     net.Listener
	srv    *http.Server
	tmpDir string

	mu         sync.Mutex
	closed     bool
	mismatches []Mismatch
	pool       []*Request // recorded requests not yet played
	next       int        // number of the next request to play
	served     []string   // API calls served, as "GET /path"
	conns      []*spdystream.Connection
	players    sync.WaitGroup
	closeOnce  sync.Once
	done       chan struct{}
}

// StartAPIServer starts a recorded apiserver (as `pftap replay --serve`
// does; in a Go test, replaytest.NewAPIServer). Close stops it.
func StartAPIServer(s *Session, opts ...Option) (*APIServer, error) {
	return start(s, defaults(opts))
}

func start(s *Session, o options) (*APIServer, error) {
	if len(s.ClientLeg()) == 0 {
		return nil, errors.New("the recording has no port-forward session to replay (no connection switched to SPDY/3.1 or the WebSocket SPDY tunnel)")
	}
	ca, err := pki.New("pftap replay")
	if err != nil {
		return nil, err
	}
	addr := o.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, _, _ := net.SplitHostPort(addr)
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		ips = append(ips, ip)
	}
	cert, err := ca.Issue("pftap-replay-apiserver", ips, []string{"localhost"}, false)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	a := &APIServer{s: s, opts: o, ln: ln, CA: ca.PEM, Token: "pftap-replay-" + hex.EncodeToString(tok), done: make(chan struct{})}
	a.pool = s.Requests()
	a.next = 1
	urlHost := ln.Addr().String()
	if h, p, _ := net.SplitHostPort(urlHost); h == "::" || h == "0.0.0.0" {
		urlHost = net.JoinHostPort("127.0.0.1", p)
	}
	a.URL = "https://" + urlHost
	a.Config = &rest.Config{Host: a.URL, BearerToken: a.Token, TLSClientConfig: rest.TLSClientConfig{CAData: ca.PEM}}
	ns, _, _ := s.Pod()
	if o.kubecfg == "" {
		if a.tmpDir, err = os.MkdirTemp("", "pftap-replay-"); err != nil {
			ln.Close()
			return nil, err
		}
		o.kubecfg = filepath.Join(a.tmpDir, "kubeconfig")
	}
	a.Kubeconfig = o.kubecfg
	kc := pki.Kubeconfig(pki.KubeconfigOptions{Name: "pftap-replay", Server: a.URL, CAPEM: ca.PEM, Token: a.Token, Namespace: ns})
	if err := os.WriteFile(a.Kubeconfig, []byte(kc), 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	a.srv = &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		ErrorLog:  nil}
	go a.srv.ServeTLS(ln, "", "")
	return a, nil
}

// Close stops the server and its sessions, reports the recorded requests
// the client never made, and removes the kubeconfig it wrote on its own.
func (a *APIServer) Close() error {
	first := false
	a.closeOnce.Do(func() { first = true })
	if !first {
		return nil
	}
	err := a.srv.Close()
	// Give the players a moment to finish on their own: a client that has
	// just stopped has closed its connection, and its streams are ending.
	finished := make(chan struct{})
	go func() { a.players.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(2 * time.Second):
	}
	a.mu.Lock()
	close(a.done)
	conns := a.conns
	a.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	a.players.Wait()
	a.mu.Lock()
	left := len(a.pool)
	a.mu.Unlock()
	if left > 0 {
		a.mismatch(Mismatch{What: fmt.Sprintf("the recording has %d more port-forward requests than the client made (it made %d)", left, a.next-1)})
	}
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	if a.tmpDir != "" {
		os.RemoveAll(a.tmpDir)
	}
	return err
}

// Mismatches returns every mismatch found so far.
func (a *APIServer) Mismatches() []Mismatch {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Mismatch(nil), a.mismatches...)
}

// Played is how many recorded port-forward requests were played.
func (a *APIServer) Played() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.next - 1
}

// Served lists the plain API calls answered, as "GET /path".
func (a *APIServer) Served() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.served...)
}

func (a *APIServer) mismatch(m Mismatch) {
	a.mu.Lock()
	closed := a.closed
	a.mismatches = append(a.mismatches, m)
	a.mu.Unlock()
	if !closed && a.opts.report != nil {
		a.opts.report(m)
	}
}

// ServeHTTP answers the API as recorded.
func (a *APIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") != a.Token {
		fakeapi.Status(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
	a.mu.Lock()
	a.served = append(a.served, r.Method+" "+r.URL.RequestURI())
	a.mu.Unlock()
	if ns, pod, api := parsePortForwardPath(r.URL.Path); api {
		a.portForward(w, r, ns, pod)
		return
	}
	if x := a.recorded(r); x != nil {
		for k, vs := range x.RespHeader {
			switch strings.ToLower(k) {
			case "content-length", "transfer-encoding", "connection", "date", "keep-alive":
				continue
			}
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(x.RespBody)))
		w.WriteHeader(x.Status)
		w.Write(x.RespBody)
		return
	}
	if fakeapi.Discovery(w, r, 37, "v1.37.2-pftap-replay") {
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	ns, pod, _ := a.s.Pod()
	if len(parts) == 6 && parts[0] == "api" && parts[2] == "namespaces" && parts[4] == "pods" && r.Method == http.MethodGet {
		if parts[3] != ns || parts[5] != pod {
			fakeapi.Status(w, http.StatusNotFound, "NotFound", fmt.Sprintf("pods %q not found", parts[5]))
			return
		}
		fakeapi.JSON(w, fakeapi.Pod(ns, pod, "10.0.0.10", a.s.Summary.Start))
		return
	}
	fakeapi.Status(w, http.StatusNotFound, "NotFound", "the recording has no answer to "+r.Method+" "+r.URL.Path)
}

// recorded finds the recorded answer to a plain API request on the
// client's leg: the same method and target, or the same method and path.
func (a *APIServer) recorded(r *http.Request) *Exchange {
	legs := map[string]bool{}
	for _, pf := range a.s.ClientLeg() {
		legs[pf.Leg] = true
	}
	var samePath *Exchange
	for _, x := range a.s.Exchanges {
		if !legs[x.Leg] || !x.Answered || x.IsUpgrade() || x.Method != r.Method {
			continue
		}
		if x.Target == r.URL.RequestURI() {
			return x
		}
		if samePath == nil && x.Path() == r.URL.Path {
			samePath = x
		}
	}
	return samePath
}

// refusedWebSocket returns the recorded refusal of a WebSocket upgrade
// when the recording has one and no WebSocket session: the recorded
// apiserver did not speak WebSocket, so the replay does not either.
func (a *APIServer) refusedWebSocket() *Exchange {
	var refused *Exchange
	for _, pf := range a.s.ClientLeg() {
		if pf.WebSocket {
			return nil
		}
	}
	legs := map[string]bool{}
	for _, pf := range a.s.ClientLeg() {
		legs[pf.Leg] = true
	}
	for _, x := range a.s.Exchanges {
		if legs[x.Leg] && x.IsUpgrade() && x.IsWebSocket() && x.Answered && x.Status != http.StatusSwitchingProtocols {
			refused = x
			break
		}
	}
	return refused
}

func (a *APIServer) portForward(w http.ResponseWriter, r *http.Request, ns, pod string) {
	wantNS, wantPod, _ := a.s.Pod()
	if ns != wantNS || pod != wantPod {
		a.mismatch(Mismatch{What: fmt.Sprintf("the client port-forwards to pod %s/%s; the recording is of pod %s/%s", ns, pod, wantNS, wantPod)})
		fakeapi.Status(w, http.StatusNotFound, "NotFound", fmt.Sprintf("pods %q not found", pod))
		return
	}
	if wsstream.IsWebSocketRequest(r) {
		if a.opts.noWS {
			fakeapi.Status(w, http.StatusBadRequest, "BadRequest", "unable to upgrade: WebSocket is refused by this recorded apiserver (SPDY only)")
			return
		}
		if x := a.refusedWebSocket(); x != nil {
			for k, vs := range x.RespHeader {
				if k == "Content-Type" {
					w.Header()[k] = vs
				}
			}
			w.WriteHeader(x.Status)
			w.Write(x.RespBody)
			return
		}
		if !wsstream.IsWebSocketRequestWithTunnelingProtocol(r) {
			fakeapi.Status(w, http.StatusBadRequest, "BadRequest", "unable to upgrade: the recorded apiserver speaks port-forward over WebSocket only as a SPDY tunnel")
			return
		}
		proxyutil.NewTunnelingHandler(http.HandlerFunc(a.spdyUpgrade)).ServeHTTP(w, r)
		return
	}
	a.spdyUpgrade(w, r)
}

// spdyUpgrade switches to SPDY/3.1 and plays the recorded server side of
// every request the client opens.
func (a *APIServer) spdyUpgrade(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "SPDY/3.1") {
		fakeapi.Status(w, http.StatusBadRequest, "BadRequest", "unable to upgrade: missing upgrade headers in request")
		return
	}
	proto := ""
	for _, v := range r.Header.Values("X-Stream-Protocol-Version") {
		for _, p := range strings.Split(v, ",") {
			if strings.TrimSpace(p) == "portforward.k8s.io" {
				proto = "portforward.k8s.io"
			}
		}
	}
	if proto == "" {
		w.Header().Set("X-Accepted-Stream-Protocol-Versions", "portforward.k8s.io")
		fakeapi.Status(w, http.StatusForbidden, "Forbidden", "unable to upgrade: unable to negotiate protocol: client supports "+strings.Join(r.Header.Values("X-Stream-Protocol-Version"), ",")+", server supports portforward.k8s.io")
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		fakeapi.Status(w, http.StatusInternalServerError, "InternalError", "unable to upgrade: connection cannot be hijacked")
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: " + proto + "\r\n\r\n"
	if _, err := conn.Write([]byte(resp)); err != nil {
		conn.Close()
		return
	}
	if brw != nil && brw.Reader.Buffered() > 0 {
		conn = &bufferedConn{Conn: conn, r: brw.Reader}
	}
	sc, err := spdystream.NewConnection(conn, true)
	if err != nil {
		conn.Close()
		return
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		sc.Close()
		return
	}
	a.conns = append(a.conns, sc)
	a.mu.Unlock()
	s := &serverSession{a: a, sc: sc, byID: map[string]*player{}, done: make(chan struct{})}
	go func() {
		sc.Serve(s.newStream)
		close(s.done)
	}()
}

// bufferedConn reads what the HTTP server had already buffered first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// serverSession is one port-forward connection of a client.
type serverSession struct {
	a    *APIServer
	sc   *spdystream.Connection
	done chan struct{}

	mu      sync.Mutex
	byID    map[string]*player
	pending *player // requestID-less: the request whose data stream is due
}

// take hands out the next recorded request.
func (a *APIServer) take() (*Request, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.pool) == 0 {
		return nil, 0
	}
	r := a.pool[0]
	a.pool = a.pool[1:]
	n := a.next
	a.next++
	return r, n
}

// newStream is called by spdystream for each stream the client opens; it
// must not block.
func (s *serverSession) newStream(st *spdystream.Stream) {
	h := st.Headers()
	typ, id := h.Get("streamType"), h.Get("requestID")
	s.mu.Lock()
	var p *player
	switch {
	case id != "":
		p = s.byID[id]
	case s.pending != nil:
		p = s.pending
		s.pending = nil
	}
	if p == nil {
		rec, n := s.a.take()
		if rec == nil {
			s.mu.Unlock()
			s.a.mismatch(Mismatch{What: fmt.Sprintf("the client opened a request (requestID %q, port %s) beyond the %d recorded ones; refused", id, h.Get("port"), s.a.Played())})
			st.Refuse()
			return
		}
		p = newPlayer(decode.FromServer, rec, n, s.a.opts, s.a.mismatch, mergeDone(s.done, s.a.done))
		if id != "" {
			s.byID[id] = p
		} else {
			s.pending = p
		}
		s.a.players.Add(1)
		go func() {
			defer s.a.players.Done()
			p.run()
		}()
	}
	s.mu.Unlock()
	if _, known := p.rec.Streams[typ]; !known {
		s.a.mismatch(Mismatch{Request: p.num, RequestID: p.rec.ID, What: fmt.Sprintf("the client opened a %q stream, which the recorded request has not; refused", typ)})
		st.Refuse()
		return
	}
	p.answer(typ, st)
	p.attach(typ, st)
}

// mergeDone is closed when either is.
func mergeDone(a, b <-chan struct{}) <-chan struct{} {
	c := make(chan struct{})
	go func() {
		select {
		case <-a:
		case <-b:
		}
		close(c)
	}()
	return c
}
