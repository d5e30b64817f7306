package pfclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/httpstream"
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
	// Namespace and Pod name the target.
	Namespace, Pod string
	// Local and Remote are the ports; Local 0 picks a free one.
	Local, Remote int
	// SPDY skips the WebSocket tunnel.
	SPDY bool
	// Wrap, when set, is given each TLS connection to the apiserver (the
	// plaintext side), and the relay uses what it returns: for a tap.
	Wrap func(net.Conn) net.Conn
}

// Forwarder is a running port-forward.
type Forwarder struct {
	// Local is the local port, on 127.0.0.1.
	Local int
	stop  chan struct{}
	done  chan error
	relay net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	Out   strings.Builder
}

// Start checks that the pod runs, then forwards, and returns once the local
// port accepts connections.
func Start(ctx context.Context, o Options) (*Forwarder, error) {
	if o.Server == nil || o.Server.Scheme != "https" {
		return nil, errors.New("pfclient: the apiserver URL must be https")
	}
	pool := x509.NewCertPool()
	if len(o.CA) > 0 && !pool.AppendCertsFromPEM(o.CA) {
		return nil, errors.New("pfclient: no certificate in the CA")
	}
	f := &Forwarder{stop: make(chan struct{}), done: make(chan error, 1)}
	relay, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f.relay = relay
	tlsCfg := &tls.Config{RootCAs: pool, ServerName: o.Server.Hostname(), MinVersion: tls.VersionTLS12}
	go f.serveRelay(o.Server.Host, tlsCfg, o.Wrap)

	base := &url.URL{Scheme: "http", Host: relay.Addr().String()}
	cfg := &rest.Config{Host: base.String(), BearerToken: o.Token}
	// As kubectl does: the pod must exist and run.
	if err := checkPod(ctx, cfg, o.Namespace, o.Pod); err != nil {
		f.close()
		return nil, err
	}
	pfURL := *base
	pfURL.Path = fmt.Sprintf("/api/v1/namespaces/%s/pods/%s/portforward", o.Namespace, o.Pod)
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		f.close()
		return nil, err
	}
	var dialer httpstream.Dialer = spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, &pfURL)
	if !o.SPDY {
		ws, err := portforward.NewSPDYOverWebsocketDialer(&pfURL, cfg)
		if err != nil {
			f.close()
			return nil, err
		}
		// As kubectl: an apiserver that cannot tunnel (before 1.31)
		// refuses the upgrade, and the SPDY upgrade is tried instead.
		dialer = portforward.NewFallbackDialer(ws, dialer, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err) ||
				streamhttp.IsUpgradeFailure(err) || streamhttp.IsHTTPSProxyError(err)
		})
	}
	local := strconv.Itoa(o.Local)
	ready := make(chan struct{})
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{local + ":" + strconv.Itoa(o.Remote)}, f.stop, ready, &f.Out, &f.Out)
	if err != nil {
		f.close()
		return nil, err
	}
	go func() { f.done <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-f.done:
		f.close()
		return nil, fmt.Errorf("port-forward: %w", err)
	case <-ctx.Done():
		f.Stop()
		return nil, ctx.Err()
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) == 0 {
		f.Stop()
		return nil, fmt.Errorf("port-forward: no local port: %v", err)
	}
	f.Local = int(ports[0].Local)
	return f, nil
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

// serveRelay accepts client-go's plain connections and carries each over a
// new, tapped TLS connection to the apiserver.
func (f *Forwarder) serveRelay(server string, cfg *tls.Config, wrap func(net.Conn) net.Conn) {
	for {
		c, err := f.relay.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			raw, err := net.DialTimeout("tcp", server, 10*time.Second)
			if err != nil {
				return
			}
			tc := tls.Client(raw, cfg)
			if err := tc.Handshake(); err != nil {
				raw.Close()
				return
			}
			var up net.Conn = tc
			if wrap != nil {
				up = wrap(tc)
			}
			f.track(up, c)
			done := make(chan struct{})
			go func() {
				io.Copy(up, c)
				if cw, ok := up.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
				}
				close(done)
			}()
			io.Copy(c, up)
			if cw, ok := c.(*net.TCPConn); ok {
				cw.CloseWrite()
			}
			<-done
			up.Close()
		}()
	}
}

func (f *Forwarder) track(cs ...net.Conn) {
	f.mu.Lock()
	f.conns = append(f.conns, cs...)
	f.mu.Unlock()
}

func (f *Forwarder) close() {
	f.relay.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// Stop ends the port-forward: client-go closes its streams and says GOAWAY,
// the relay carries that to the apiserver and both sides close; only what
// is still open after a grace period is closed by force.
func (f *Forwarder) Stop() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
	}
	f.relay.Close()
	idle := make(chan struct{})
	go func() { f.wg.Wait(); close(idle) }()
	select {
	case <-idle:
	case <-time.After(2 * time.Second):
	}
	f.close()
}
