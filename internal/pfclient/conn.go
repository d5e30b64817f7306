package pfclient

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gwebsocket "github.com/gorilla/websocket"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	spdystream "k8s.io/apimachinery/pkg/util/httpstream/spdy"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/websocket"
)

// lingerFor bounds how long a connection client-go closed waits for the
// apiserver's end of it.
const lingerFor = 2 * time.Second

// dialServer makes one connection to the apiserver for client-go: through
// the proxy, if any, then TLS, then the tap (Options.Wrap) on the
// plaintext. client-go writes plain HTTP to what it returns.
func (f *Forwarder) dialServer(ctx context.Context, server string, tlsCfg *tls.Config, proxyFn func(*http.Request) (*url.URL, error), o Options) (net.Conn, error) {
	raw, err := dialVia(proxyFn, server, tlsCfg, o.WrapProxy)
	if err != nil {
		f.setRelayErr(err)
		return nil, err
	}
	var c net.Conn = raw
	if tlsCfg != nil {
		tc := tls.Client(raw, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			err = fmt.Errorf("TLS with %s: %w", server, err)
			f.setRelayErr(err)
			return nil, err
		}
		c = tc
	}
	if o.Wrap != nil {
		c = o.Wrap(c)
	}
	sc := &serverConn{Conn: c}
	f.wg.Add(1)
	sc.done = f.wg.Done
	f.track(sc)
	return sc, nil
}

// serverConn closes as a socket does, which the kernel keeps for its
// peer's end: client-go's Close sends this end's close_notify and
// returns, and what the apiserver still sends, and its close, are read
// (so that the tap under it records them as a capture would), for at most
// lingerFor; then the connection is closed.
type serverConn struct {
	net.Conn
	closed atomic.Bool
	once   sync.Once
	shutMu sync.Once
	done   func()
}

// Read fails once client-go has closed the connection; the linger reads
// the rest.
func (c *serverConn) Read(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	return c.Conn.Read(b)
}

func (c *serverConn) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		cw, ok := c.Conn.(interface{ CloseWrite() error })
		if !ok || cw.CloseWrite() != nil {
			c.shut()
			return
		}
		go func() {
			c.Conn.SetReadDeadline(time.Now().Add(lingerFor))
			io.Copy(io.Discard, c.Conn)
			c.shut()
		}()
	})
	return nil
}

// shut closes the connection now.
func (c *serverConn) shut() {
	c.shutMu.Do(func() {
		c.closed.Store(true)
		c.Conn.Close()
		if c.done != nil {
			c.done()
		}
	})
}

// tunnelDialer is client-go's SPDY-over-WebSocket dialer (what kubectl
// 1.31 and later try first) on the forwarder's connections: the
// WebSocket handshake is made over dialServer's plaintext.
type tunnelDialer struct {
	url *url.URL
	cfg *rest.Config
}

// tunnelPrefix marks the tunnelled SPDY subprotocols (the apiserver's
// "SPDY/3.1+portforward.k8s.io").
const tunnelPrefix = "SPDY/3.1+"

func (d *tunnelDialer) Dial(protocols ...string) (httpstream.Connection, string, error) {
	rt := &wsRoundTripper{dial: d.cfg.Dial}
	wrapper, err := rest.HTTPWrappersForConfig(d.cfg, rt)
	if err != nil {
		return nil, "", err
	}
	req, err := http.NewRequest(http.MethodGet, d.url.String(), nil)
	if err != nil {
		return nil, "", err
	}
	var offered []string
	for _, p := range protocols {
		offered = append(offered, tunnelPrefix+p)
	}
	conn, err := websocket.Negotiate(wrapper, rt, req, offered...)
	if err != nil {
		return nil, "", err
	}
	tc := portforward.NewTunnelingConnection("client", conn)
	sc, err := spdystream.NewClientConnectionWithPings(tc, portforward.PingPeriod)
	if err != nil {
		tc.Close()
		return nil, "", err
	}
	return sc, strings.TrimPrefix(conn.Subprotocol(), tunnelPrefix), nil
}

// wsRoundTripper makes the WebSocket handshake of one request over a
// connection of dial; it holds the connection for websocket.Negotiate.
type wsRoundTripper struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	conn *gwebsocket.Conn
}

// DataBufferSize is the size of the WebSocket messages' buffers.
func (rt *wsRoundTripper) DataBufferSize() int { return 32 << 10 }

// Connection is the WebSocket connection the round trip made.
func (rt *wsRoundTripper) Connection() *gwebsocket.Conn { return rt.conn }

// RoundTrip dials and makes the handshake. A refused handshake is an
// httpstream.UpgradeFailureError (what makes client-go fall back to
// SPDY), with the apiserver's Status when it sent one.
func (rt *wsRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	const protoHeader = "Sec-Websocket-Protocol"
	offered := req.Header[protoHeader]
	header := req.Header.Clone()
	delete(header, protoHeader)
	u := *req.URL
	u.Scheme = "ws"
	d := gwebsocket.Dialer{NetDialContext: rt.dial, Subprotocols: offered,
		ReadBufferSize: rt.DataBufferSize() + 1024, WriteBufferSize: rt.DataBufferSize() + 1024}
	conn, resp, err := d.DialContext(req.Context(), u.String(), header)
	if err != nil {
		if !errors.Is(err, gwebsocket.ErrBadHandshake) {
			return nil, err
		}
		cause := err
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			cause = fmt.Errorf("%w (%s)", err, resp.Status)
			var st metav1.Status
			if json.Unmarshal(body, &st) == nil && st.Kind == "Status" {
				cause = &apierrors.StatusError{ErrStatus: st}
			} else if msg := strings.TrimSpace(string(body)); msg != "" {
				cause = fmt.Errorf("%w: %s", cause, msg)
			}
		}
		return nil, &httpstream.UpgradeFailureError{Cause: cause}
	}
	if !slices.Contains(offered, conn.Subprotocol()) {
		conn.Close()
		return nil, &httpstream.UpgradeFailureError{Cause: fmt.Errorf("the apiserver chose subprotocol %q, not one of %q", conn.Subprotocol(), offered)}
	}
	rt.conn = conn
	return resp, nil
}
