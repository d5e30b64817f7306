package pfclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/proxy"

	"k8s.io/apimachinery/pkg/util/httpstream"
	spdystream "k8s.io/apimachinery/pkg/util/httpstream/spdy"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// Options say what to forward.
type Options struct {
	// Server is the apiserver's https URL, CA its certificate authority
	// (PEM), Token a bearer token.
	Server *url.URL
	CA     []byte
	Token  string
	// Proxy, when set, is the proxy to reach the apiserver through (an
	// http, https or socks5 URL); otherwise Config's, or the environment's
	// (HTTPS_PROXY, NO_PROXY) with Config.
	Proxy *url.URL
	// WrapProxy, when set, wraps each connection to an http or https
	// proxy (below the proxy's TLS) before the CONNECT is written.
	WrapProxy func(net.Conn) net.Conn
	// Config, when set, is used instead of Server, CA and Token: any
	// client-go configuration (from a kubeconfig: client certificates,
	// exec plugins, tokens). Its TLS is made by the forwarder under
	// client-go's plain HTTP, so that the plaintext can be tapped;
	// client-go adds its credentials.
	Config *rest.Config
	// Namespace and Pod name the target.
	Namespace, Pod string
	// Local and Remote are the ports; Local 0 picks a free one.
	Local, Remote int
	// Ports, when set, replaces Local and Remote: "LOCAL:REMOTE" pairs.
	Ports []string
	// Address is the local address to listen on (127.0.0.1).
	Address string
	// SPDY skips the WebSocket tunnel.
	SPDY bool
	// Wrap, when set, is given each TLS connection to the apiserver (the
	// plaintext side), and client-go uses what it returns: for a tap.
	Wrap func(net.Conn) net.Conn
	// OnError, when set, is given each error client-go reports while it
	// forwards (its "Unhandled Error" lines in kubectl), as it does.
	OnError func(ClientError)
}

// Forwarder is a running port-forward.
type Forwarder struct {
	// Local is the (first) local port.
	Local int
	// Ports are the forwarded ports, local and remote.
	Ports    []portforward.ForwardedPort
	stop     chan struct{}
	finished chan struct{}
	err      error
	relayErr error
	wg       sync.WaitGroup // the apiserver connections not closed yet
	mu       sync.Mutex
	conns    []*serverConn
	out      lockedBuilder
	unroute  func() // ends OnError's routing
}

// Output is what client-go's port-forwarder printed ("Handling
// connection...", forwarding errors).
func (f *Forwarder) Output() string { return f.out.String() }

// Done is closed when the port-forward ends (Err says why).
func (f *Forwarder) Done() <-chan struct{} { return f.finished }

// Err is why the port-forward ended; nil while it runs or after Stop.
func (f *Forwarder) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// RelayErr is the last error of the forwarder's connections to the apiserver
// (a TLS handshake that failed, say): client-go sees only a closed
// connection.
func (f *Forwarder) RelayErr() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.relayErr
}

func (f *Forwarder) setRelayErr(err error) {
	f.mu.Lock()
	f.relayErr = err
	f.mu.Unlock()
}

type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start checks that the pod runs, then forwards, and returns once the local
// port accepts connections.
func Start(ctx context.Context, o Options) (*Forwarder, error) {
	server, tlsCfg, cfg, err := relayConfig(o)
	if err != nil {
		return nil, err
	}
	// As client-go: the kubeconfig's proxy-url, else the environment's
	// (HTTPS_PROXY, NO_PROXY). The lab's own client goes direct.
	proxyFn := proxyFunc(o)
	f := &Forwarder{stop: make(chan struct{}), finished: make(chan struct{})}
	// client-go speaks plain HTTP over connections this dialer makes: TLS
	// (and the proxy) are the forwarder's, so that the tap sits below TLS
	// in the same connection, with no relay in between.
	cfg.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
		return f.dialServer(ctx, server, tlsCfg, proxyFn, o)
	}
	cfg.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
	base := &url.URL{Scheme: "http", Host: server}
	cfg.Host = base.String()
	// As kubectl does: the pod must exist and run.
	if err := checkPod(ctx, cfg, o.Namespace, o.Pod); err != nil {
		f.close()
		return nil, err
	}
	pfURL := *base
	pfURL.Path = fmt.Sprintf("/api/v1/namespaces/%s/pods/%s/portforward", o.Namespace, o.Pod)
	upgrader, err := spdystream.NewRoundTripperWithConfig(spdystream.RoundTripperConfig{PingPeriod: 5 * time.Second,
		UpgradeTransport: &http.Transport{DialContext: cfg.Dial}})
	if err != nil {
		f.close()
		return nil, err
	}
	transport, err := rest.HTTPWrappersForConfig(cfg, upgrader)
	if err != nil {
		f.close()
		return nil, err
	}
	var dialer httpstream.Dialer = spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, &pfURL)
	if !o.SPDY {
		ws := &tunnelDialer{url: &pfURL, cfg: cfg}
		// As kubectl: an apiserver that cannot tunnel (before 1.31)
		// refuses the upgrade, and the SPDY upgrade is tried instead.
		dialer = portforward.NewFallbackDialer(ws, dialer, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err) ||
				streamhttp.IsUpgradeFailure(err) || streamhttp.IsHTTPSProxyError(err)
		})
	}
	ports := o.Ports
	if len(ports) == 0 {
		ports = []string{strconv.Itoa(o.Local) + ":" + strconv.Itoa(o.Remote)}
	}
	addr := o.Address
	if addr == "" {
		addr = "127.0.0.1"
	}
	ready := make(chan struct{})
	pf, err := portforward.NewOnAddresses(dialer, []string{addr}, ports, f.stop, ready, &f.out, &f.out)
	if err != nil {
		f.close()
		return nil, err
	}
	go func() {
		err := pf.ForwardPorts()
		f.mu.Lock()
		f.err = err
		f.mu.Unlock()
		close(f.finished)
	}()
	select {
	case <-ready:
	case <-f.finished:
		f.close()
		if rerr := f.RelayErr(); rerr != nil {
			return nil, fmt.Errorf("port-forward: %w (%v)", f.Err(), rerr)
		}
		if why := whyNoListen(addr, ports); why != nil {
			return nil, why
		}
		return nil, fmt.Errorf("port-forward: %w", f.Err())
	case <-ctx.Done():
		f.Stop()
		return nil, ctx.Err()
	}
	fwd, err := pf.GetPorts()
	if err != nil || len(fwd) == 0 {
		f.Stop()
		return nil, fmt.Errorf("port-forward: no local port: %v", err)
	}
	f.Local = int(fwd[0].Local)
	f.Ports = fwd
	if o.OnError != nil {
		var local []int
		for _, p := range fwd {
			local = append(local, int(p.Local))
		}
		f.unroute = routeErrorsOf(local, o.OnError)
	}
	return f, nil
}

// whyNoListen finds which local port could not be listened on, for a
// port-forward that could listen on none (client-go's error lists them as
// Go values).
func whyNoListen(addr string, ports []string) error {
	for _, p := range ports {
		local, _, _ := strings.Cut(p, ":")
		if local == "" || local == "0" {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(addr, local))
		if err != nil {
			var se *os.SyscallError
			if errors.As(err, &se) {
				err = se.Err
			}
			return fmt.Errorf("cannot listen on local port %s of %s: %v", local, addr, err)
		}
		l.Close()
	}
	return nil
}

// proxyFunc is how the forwarder finds its proxy: Options.Proxy, else the
// kubeconfig's proxy-url, else the environment (with a Config, as
// client-go does).
func proxyFunc(o Options) func(*http.Request) (*url.URL, error) {
	switch {
	case o.Proxy != nil:
		return http.ProxyURL(o.Proxy)
	case o.Config != nil && o.Config.Proxy != nil:
		return o.Config.Proxy
	case o.Config != nil:
		return http.ProxyFromEnvironment
	}
	return func(*http.Request) (*url.URL, error) { return nil, nil }
}

// ProxyFor is the proxy Start will reach the apiserver through with o
// (nil: none), so that a caller can tap that leg too (WrapProxy).
func ProxyFor(o Options) (*url.URL, error) {
	server, tlsCfg, _, err := relayConfig(o)
	if err != nil {
		return nil, err
	}
	scheme := "https"
	if tlsCfg == nil {
		scheme = "http"
	}
	return proxyFunc(o)(&http.Request{Method: http.MethodGet, URL: &url.URL{Scheme: scheme, Host: server}, Header: http.Header{}})
}

// relayConfig returns where the forwarder connects (host:port), the TLS
// it speaks there, and client-go's configuration for talking plain HTTP
// over those connections (credentials kept, TLS settings dropped).
func relayConfig(o Options) (string, *tls.Config, *rest.Config, error) {
	if o.Config == nil {
		if o.Server == nil || o.Server.Scheme != "https" {
			return "", nil, nil, errors.New("pfclient: the apiserver URL must be https")
		}
		pool := x509.NewCertPool()
		if len(o.CA) > 0 && !pool.AppendCertsFromPEM(o.CA) {
			return "", nil, nil, errors.New("pfclient: no certificate in the CA")
		}
		return o.Server.Host, &tls.Config{RootCAs: pool, ServerName: o.Server.Hostname(), MinVersion: tls.VersionTLS12}, &rest.Config{BearerToken: o.Token}, nil
	}
	u, err := url.Parse(o.Config.Host)
	if err != nil || u.Host == "" {
		// "host:port" without a scheme, as kubeconfigs sometimes say.
		if u, err = url.Parse("https://" + o.Config.Host); err != nil {
			return "", nil, nil, fmt.Errorf("pfclient: server %q: %w", o.Config.Host, err)
		}
	}
	host := u.Host
	if u.Port() == "" {
		port := "443"
		if u.Scheme == "http" {
			port = "80"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	var tlsCfg *tls.Config
	if u.Scheme != "http" {
		if tlsCfg, err = rest.TLSConfigFor(o.Config); err != nil {
			return "", nil, nil, fmt.Errorf("pfclient: TLS settings of the kubeconfig: %w", err)
		}
		if tlsCfg == nil {
			tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tlsCfg = tlsCfg.Clone()
		if tlsCfg.ServerName == "" {
			tlsCfg.ServerName = u.Hostname()
		}
		tlsCfg.NextProtos = []string{"http/1.1"}
	}
	cfg := rest.CopyConfig(o.Config)
	cfg.TLSClientConfig = rest.TLSClientConfig{}
	cfg.Transport, cfg.WrapTransport, cfg.Dial, cfg.Proxy = nil, nil, nil, nil
	return host, tlsCfg, cfg, nil
}

func checkPod(ctx context.Context, cfg *rest.Config, ns, pod string) error {
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cfg.Host+"/api/v1/namespaces/"+ns+"/pods/"+pod, nil)
	req.Header.Set("Accept", "application/json")
	req.Close = true // nothing else goes over this connection
	resp, err := (&http.Client{Transport: rt, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("get pod %s/%s: %w", ns, pod, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get pod %s/%s: %s: %s", ns, pod, resp.Status, strings.TrimSpace(string(body)))
	}
	if !strings.Contains(string(body), `"phase":"Running"`) {
		return fmt.Errorf("pod %s/%s is not running", ns, pod)
	}
	return nil
}

func (f *Forwarder) track(c *serverConn) {
	f.mu.Lock()
	f.conns = append(f.conns, c)
	f.mu.Unlock()
}

// close closes every connection to the apiserver at once.
func (f *Forwarder) close() {
	f.mu.Lock()
	conns := f.conns
	f.mu.Unlock()
	for _, c := range conns {
		c.shut()
	}
	f.wg.Wait()
}

// Stop ends the port-forward: client-go closes its streams and says GOAWAY,
// each connection says close_notify and waits for the apiserver's end;
// only what is still open after a grace period is closed by force.
func (f *Forwarder) Stop() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	select {
	case <-f.finished:
	case <-time.After(5 * time.Second):
	}
	if f.unroute != nil {
		f.unroute()
	}
	// The connections client-go closed linger for the apiserver's end.
	idle := make(chan struct{})
	go func() { f.wg.Wait(); close(idle) }()
	select {
	case <-idle:
	case <-time.After(2 * time.Second):
	}
	f.close()
}

// dialVia connects to server, through the proxy the kubeconfig (or the
// environment, as client-go does) names for it: HTTP CONNECT through an
// http or https proxy, or SOCKS5.
func dialVia(proxyFn func(*http.Request) (*url.URL, error), server string, tlsCfg *tls.Config, wrap func(net.Conn) net.Conn) (net.Conn, error) {
	scheme := "https"
	if tlsCfg == nil {
		scheme = "http"
	}
	req := &http.Request{Method: http.MethodGet, URL: &url.URL{Scheme: scheme, Host: server}, Header: http.Header{}}
	pu, err := proxyFn(req)
	if err != nil {
		return nil, fmt.Errorf("proxy for %s: %w", server, err)
	}
	if pu == nil {
		return net.DialTimeout("tcp", server, 10*time.Second)
	}
	switch pu.Scheme {
	case "socks5", "socks5h":
		var auth *proxy.Auth
		if pu.User != nil {
			pw, _ := pu.User.Password()
			auth = &proxy.Auth{User: pu.User.Username(), Password: pw}
		}
		d, err := proxy.SOCKS5("tcp", pu.Host, auth, &net.Dialer{Timeout: 10 * time.Second})
		if err != nil {
			return nil, err
		}
		c, err := d.Dial("tcp", server)
		if err != nil {
			return nil, fmt.Errorf("through SOCKS5 proxy %s: %w", pu.Host, err)
		}
		return c, nil
	case "http", "https":
		host := pu.Host
		if pu.Port() == "" {
			host = net.JoinHostPort(pu.Hostname(), map[string]string{"http": "80", "https": "443"}[pu.Scheme])
		}
		c, err := net.DialTimeout("tcp", host, 10*time.Second)
		if err != nil {
			return nil, fmt.Errorf("proxy %s: %w", pu.Host, err)
		}
		if pu.Scheme == "https" {
			// As client-go's transport: the proxy's certificate is
			// checked against the cluster's CA (the system's without one).
			pcfg := &tls.Config{ServerName: pu.Hostname(), MinVersion: tls.VersionTLS12}
			if tlsCfg != nil {
				pcfg.RootCAs = tlsCfg.RootCAs
			}
			tc := tls.Client(c, pcfg)
			if err := tc.Handshake(); err != nil {
				c.Close()
				return nil, fmt.Errorf("proxy %s: %w", pu.Host, err)
			}
			c = tc
		}
		if wrap != nil {
			// Below the proxy's TLS: the CONNECT and the tunnel.
			c = wrap(c)
		}
		connect := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: server}, Host: server, Header: http.Header{}}
		if pu.User != nil {
			pw, _ := pu.User.Password()
			connect.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(pu.User.Username()+":"+pw)))
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := connect.Write(c); err != nil {
			c.Close()
			return nil, fmt.Errorf("proxy %s: %w", pu.Host, err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, connect)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("proxy %s: %w", pu.Host, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			c.Close()
			return nil, fmt.Errorf("proxy %s refused CONNECT %s: %s", pu.Host, server, resp.Status)
		}
		c.SetDeadline(time.Time{})
		if br.Buffered() > 0 {
			return &bufConn{Conn: c, r: br}, nil
		}
		return c, nil
	}
	return nil, fmt.Errorf("proxy %s: scheme %q is not http, https or socks5", pu.Redacted(), pu.Scheme)
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(b []byte) (int, error) { return c.r.Read(b) }
