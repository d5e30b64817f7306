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
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	streamhttp "k8s.io/streaming/pkg/httpstream"

	"github.com/pftap/pftap/replay"
	"github.com/pftap/pftap/replay/replaytest"
)

// recording opens testdata/DIR/NAME.pcapng for "DIR/NAME": recordings/
// holds kubectl+curl sessions (internal/tools/mkrec), replay/ sessions
// made by pftap lab -w (scripts/mkreplay.sh).
func recording(t testing.TB, name string) *replay.Session {
	t.Helper()
	s, err := replay.Open(filepath.Join("..", "testdata", name+".pcapng"))
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
	for _, name := range []string{"recordings/spdy-get", "recordings/websocket-get", "recordings/spdy-bulk-1mib", "recordings/websocket-fallback", "recordings/socat-get",
		"replay/spdy-get", "replay/websocket-get", "replay/spdy-bulk", "replay/websocket-bulk", "replay/pftap-websocket-get", "replay/socat-spdy-get"} {
		for _, kind := range []string{"spdy", "websocket", "fallback"} {
			if name == "recordings/websocket-fallback" && kind == "websocket" {
				continue // the recorded apiserver refused WebSocket: only a client that falls back can go on
			}
			t.Run(name+"/"+kind, func(t *testing.T) {
				s := recording(t, name)
				reqs := s.Requests()
				a := replaytest.NewAPIServer(t, s)
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

func TestAPIServerConcurrent(t *testing.T) {
	for _, name := range []string{"recordings/spdy-concurrent", "recordings/websocket-concurrent", "replay/spdy-concurrent", "replay/websocket-concurrent"} {
		for _, kind := range []string{"spdy", "websocket"} {
			t.Run(name+"/"+kind, func(t *testing.T) {
				s := recording(t, name)
				reqs := s.Requests()
				if len(reqs) != 5 {
					t.Fatalf("recording has %d requests, want 5", len(reqs))
				}
				a := replaytest.NewAPIServer(t, s)
				ns, pod, _ := s.Pod()
				port, stop := forward(t, dialer(t, a.Config, kind, ns, pod), reqs[0].Port)
				defer stop()
				var wg sync.WaitGroup
				for i := range reqs {
					wg.Add(1)
					go func(r *replay.Request) {
						defer wg.Done()
						// Which recorded request answers which connection
						// depends on the order the streams open.
						got := roundTrip(t, port, r.ToPod)
						for _, rr := range reqs {
							if bytes.Equal(got, rr.FromPod) {
								return
							}
						}
						t.Errorf("got a response (%d bytes) that is none of the recorded ones", len(got))
					}(reqs[i])
				}
				wg.Wait()
				stop()
				a.Close()
				if a.Played() != 5 {
					t.Errorf("played %d requests, want 5", a.Played())
				}
			})
		}
	}
}

// TestAPIServerErrorStream: nothing listened on the port in the recorded
// pod; client-go gets the recorded error stream text.
func TestAPIServerErrorStream(t *testing.T) {
	for _, name := range []string{"recordings/spdy-refused", "recordings/websocket-refused", "replay/spdy-refused", "replay/websocket-refused"} {
		t.Run(name, func(t *testing.T) {
			s := recording(t, name)
			reqs := s.Requests()
			if len(reqs) != 1 || reqs[0].Error == "" {
				t.Fatalf("want one request with an error, got %d", len(reqs))
			}
			a := replaytest.NewAPIServer(t, s)
			ns, pod, _ := s.Pod()
			kind := "spdy"
			if strings.Contains(name, "websocket") {
				kind = "websocket"
			}
			// client-go reports forwarding errors through
			// runtime.HandleError; catch them there.
			errs := make(chan error, 4)
			defer captureHandleError(errs)()
			port, stop := forward(t, dialer(t, a.Config, kind, ns, pod), reqs[0].Port)
			defer stop()
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				t.Fatal(err)
			}
			c.Write(reqs[0].ToPod)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, _ := io.Copy(io.Discard, c)
			c.Close()
			if n != 0 {
				t.Errorf("the client got %d bytes; the recorded pod sent none", n)
			}
			select {
			case err := <-errs:
				if !strings.Contains(err.Error(), reqs[0].Error) {
					t.Errorf("client-go's error %q does not carry the recorded error stream text %q", err, reqs[0].Error)
				}
			case <-time.After(10 * time.Second):
				t.Error("client-go reported no error")
			}
		})
	}
}

// TestAPIServerDeviation: a client that forwards another port and sends
// other bytes gets a readable diff.
func TestAPIServerDeviation(t *testing.T) {
	s := recording(t, "recordings/spdy-get")
	rec := s.Requests()[0]
	var mu sync.Mutex
	var got []replay.Mismatch
	a := replaytest.NewAPIServer(t, s, replay.WithWait(2*time.Second), replay.WithReporter(func(m replay.Mismatch) {
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	ns, pod, _ := s.Pod()
	port, stop := forward(t, dialer(t, a.Config, "spdy", ns, pod), 8080)
	defer stop()
	other := bytes.Replace(rec.ToPod, []byte("GET / "), []byte("GET /other "), 1)
	if resp := roundTrip(t, port, other); !bytes.Equal(resp, rec.FromPod) {
		t.Errorf("the recorded response was not played back")
	}
	stop()
	a.Close()
	mu.Lock()
	defer mu.Unlock()
	var all []string
	for _, m := range got {
		all = append(all, m.Error())
	}
	text := strings.Join(all, "\n")
	t.Logf("mismatches reported:\n%s", text)
	for _, want := range []string{
		"request 1 (recorded requestID \"0\"), data stream: the client opened the data stream with other headers",
		"- port: 80\n    + port: 8080",
		"the client sent other bytes than the recorded client",
		"- GET / HTTP/1.1\\r\n    + GET /other HTTP/1.1\\r\n      Host: ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
}

// TestAPIServerStrict: client-go numbers requests from 0 like the
// recorded kubectl, so a replay of the same bytes passes strict
// comparison; a different chunking does not.
func TestAPIServerStrict(t *testing.T) {
	s := recording(t, "recordings/spdy-get")
	rec := s.Requests()[0]
	var mu sync.Mutex
	var got []string
	a := replaytest.NewAPIServer(t, s, replay.WithMode(replay.Strict), replay.WithWait(2*time.Second), replay.WithReporter(func(m replay.Mismatch) {
		mu.Lock()
		got = append(got, m.Error())
		mu.Unlock()
	}))
	ns, pod, _ := s.Pod()
	port, stop := forward(t, dialer(t, a.Config, "spdy", ns, pod), rec.Port)
	defer stop()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	// Two writes with a pause: two DATA frames where kubectl sent one.
	c.Write(rec.ToPod[:10])
	time.Sleep(100 * time.Millisecond)
	c.Write(rec.ToPod[10:])
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, len(rec.FromPod))
	io.ReadFull(c, buf)
	c.Close()
	stop()
	a.Close()
	mu.Lock()
	defer mu.Unlock()
	text := strings.Join(got, "\n")
	if !strings.Contains(text, "the same bytes in other DATA frames") || !strings.Contains(text, "frame sizes [79]") {
		t.Errorf("strict mode did not report the chunking: %s", text)
	}
	if strings.Contains(text, "other headers") {
		t.Errorf("strict mode reported headers that match: %s", text)
	}
}
