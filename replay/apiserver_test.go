package replay_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	streamhttp "k8s.io/streaming/pkg/httpstream"

	"github.com/pftap/pftap/replay"
)

func recording(t testing.TB, name string) *replay.Session {
	t.Helper()
	s, err := replay.Open(filepath.Join("..", "testdata", "recordings", name+".pcapng"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dialer builds client-go's port-forward dialer of the given kind.
func dialer(t testing.TB, cfg *rest.Config, kind, ns, pod string) httpstream.Dialer {
	t.Helper()
	u, err := url.Parse(fmt.Sprintf("%s/api/v1/namespaces/%s/pods/%s/portforward", cfg.Host, ns, pod))
	if err != nil {
		t.Fatal(err)
	}
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sd := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	if kind == "spdy" {
		return sd
	}
	wd, err := portforward.NewSPDYOverWebsocketDialer(u, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if kind == "websocket" {
		return wd
	}
	// As kubectl does: fall back to SPDY when the WebSocket upgrade fails.
	return portforward.NewFallbackDialer(wd, sd, func(err error) bool { return streamhttp.IsUpgradeFailure(err) || streamhttp.IsHTTPSProxyError(err) })
}

// forward runs client-go's PortForwarder for remote port and returns the
// local port and a stop function.
func forward(t testing.TB, d httpstream.Dialer, remote int) (int, func()) {
	t.Helper()
	stop, ready := make(chan struct{}), make(chan struct{})
	var errOut bytes.Buffer
	fw, err := portforward.NewOnAddresses(d, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", remote)}, stop, ready, io.Discard, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("port-forward: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("port-forward not ready after 10s")
	}
	ports, err := fw.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	return int(ports[0].Local), func() {
		once.Do(func() {
			close(stop)
			<-done
		})
	}
}

// roundTrip sends an HTTP request (b) to the local port, reads the
// response and closes the connection, as curl does; it returns the
// response's bytes as they came.
func roundTrip(t testing.TB, port int, b []byte) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	resp, err := http.ReadResponse(bufio.NewReader(io.TeeReader(c, &raw)), nil)
	if err != nil {
		t.Fatalf("reading the response through the port-forward: %v (got %q)", err, raw.Bytes())
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	return raw.Bytes()
}

func TestAPIServerClientGo(t *testing.T) {
	for _, name := range []string{"spdy-get", "websocket-get", "spdy-bulk-1mib", "websocket-fallback"} {
		for _, kind := range []string{"spdy", "websocket", "fallback"} {
			if name == "websocket-fallback" && kind == "websocket" {
				continue // the recorded apiserver refused WebSocket: only a client that falls back can go on
			}
			t.Run(name+"/"+kind, func(t *testing.T) {
				s := recording(t, name)
				reqs := s.Requests()
				a := replay.NewAPIServer(t, s)
				ns, pod, _ := s.Pod()
				port, stop := forward(t, dialer(t, a.Config, kind, ns, pod), reqs[0].Port)
				defer stop()
				got := roundTrip(t, port, reqs[0].ToPod)
				if !bytes.Equal(got, reqs[0].FromPod) {
					t.Errorf("the client got %d bytes, the recording has %d", len(got), len(reqs[0].FromPod))
				}
				stop()
				a.Close()
				if a.Played() != len(reqs) {
					t.Errorf("played %d requests, want %d", a.Played(), len(reqs))
				}
			})
		}
	}
}
