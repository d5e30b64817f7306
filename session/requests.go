package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A Request is one HTTP request a lab session sends through the
// port-forward's local port, on a connection of its own.
type Request struct {
	Method, Path string
}

func (r Request) String() string { return r.Method + " " + r.Path }

// ParseRequest reads "METHOD /PATH" or "/PATH" (GET).
func ParseRequest(s string) (Request, error) {
	method, path, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok {
		method, path = "GET", strings.TrimSpace(s)
	}
	path = strings.TrimSpace(path)
	bad := func(why string) error {
		return fmt.Errorf("%s; want METHOD /PATH or /PATH, like 'GET /bytes?n=1000'", why)
	}
	if method == "" || strings.Trim(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return Request{}, bad(fmt.Sprintf("%q is not an HTTP method", method))
	}
	if !strings.HasPrefix(path, "/") {
		return Request{}, bad("the path must start with /")
	}
	if _, err := url.ParseRequestURI(path); err != nil || strings.ContainsAny(path, " \t\r\n") {
		return Request{}, bad("not a request path")
	}
	return Request{method, path}, nil
}

// RequestResult is what one request got.
type RequestResult struct {
	// What is the request ("GET /path").
	What   string
	Status string
	Bytes  int64
	Took   time.Duration
	Err    error
	// Interrupted: the session was stopped (Ctrl-C, a signal) while the
	// request was under way; Err says how far it had got. No fault.
	Interrupted bool
}

// UserAgent is the User-Agent of the requests a lab session sends. With
// it, they are byte for byte what `curl -A pftap-lab` sends, so a
// recording of them replays with curl (see docs/replay.md).
const UserAgent = "pftap-lab"

// DefaultHeaderTimeout is how long a request waits for its response's
// header when SendOptions say nothing.
const DefaultHeaderTimeout = 30 * time.Second

// SendOptions say how Send sends.
type SendOptions struct {
	// Concurrency is how many requests are in flight at once (≥ 1).
	Concurrency int
	// HeaderTimeout bounds the wait for a response's header (0:
	// DefaultHeaderTimeout); a body is never timed out: a slow or long
	// response is what some sessions are there to study.
	HeaderTimeout time.Duration
	// Tap, when set, wraps each connection (to record the user's leg).
	Tap func(net.Conn) net.Conn
	// Reset makes the client abort each connection with an RST once the
	// response header and ResetAfter bytes of its body have come (or the
	// whole body, if shorter), as a cancelled download does.
	Reset      bool
	ResetAfter int64
}

// Send sends each request to 127.0.0.1:port on its own connection (each is
// one port-forward request), and closes the connection once the response
// is read, as curl does. A canceled ctx ends them all.
func Send(ctx context.Context, port int, reqs []Request, o SendOptions) []RequestResult {
	headerTimeout := o.HeaderTimeout
	if headerTimeout <= 0 {
		headerTimeout = DefaultHeaderTimeout
	}
	out := make([]RequestResult, len(reqs))
	sem := make(chan struct{}, max(o.Concurrency, 1))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = send(ctx, port, r, headerTimeout, o)
		}()
	}
	wg.Wait()
	return out
}

func send(ctx context.Context, port int, r Request, headerTimeout time.Duration, o SendOptions) RequestResult {
	t0 := time.Now()
	res := RequestResult{What: r.String()}
	// A transport of its own: no connection is shared between requests,
	// no Accept-Encoding is added.
	tr := &http.Transport{DisableCompression: true, ResponseHeaderTimeout: headerTimeout}
	var conn net.Conn
	if o.Tap != nil || o.Reset {
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if o.Tap != nil {
				c = o.Tap(c)
			}
			conn = c
			return c, nil
		}
	}
	defer tr.CloseIdleConnections()
	// No total timeout; ^C ends it.
	client := &http.Client{Transport: tr}
	req, err := http.NewRequestWithContext(ctx, r.Method, fmt.Sprintf("http://127.0.0.1:%d%s", port, r.Path), nil)
	if err == nil {
		req.Header.Set("User-Agent", UserAgent)
		req.Header.Set("Accept", "*/*")
		var resp *http.Response
		if resp, err = client.Do(req); err != nil {
			err = requestError(ctx, err)
		} else if o.Reset && conn != nil {
			res.Bytes, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, o.ResetAfter))
			abort(conn)
			resp.Body.Close()
			res.Status = fmt.Sprintf("%s (the client reset the connection after %d bytes of the body)", resp.Status, res.Bytes)
		} else {
			var cerr error
			res.Bytes, cerr = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			res.Status = resp.Status
			if cerr != nil {
				// A body cut short (the forward broke, or ^C) is a failed
				// request, whatever its status line said.
				err = fmt.Errorf("%s, but the body was cut short after %d bytes: %w", resp.Status, res.Bytes, requestError(ctx, cerr))
			}
		}
	}
	tr.CloseIdleConnections()
	res.Err, res.Took = err, time.Since(t0)
	res.Interrupted = err != nil && ctx.Err() != nil
	return res
}

// abort closes c with an RST, recording it where c is a tap.
func abort(c net.Conn) {
	if r, ok := c.(interface{ Reset() error }); ok {
		r.Reset()
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// requestError says why a request through the port-forward failed in the
// terms of the forward, not of the HTTP client's internals (its URL on the
// local port, "context canceled").
func requestError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return fmt.Errorf("stopped: %w", context.Cause(ctx))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("the port-forward closed the connection: %w", err)
	case errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("the port-forward reset the connection: %w", err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("no response header within the header timeout (--header-timeout): %v", err)
	}
	return err
}
