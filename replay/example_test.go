package replay_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"

	"k8s.io/client-go/tools/portforward"

	"github.com/pftap/pftap/replay"
)

// A recording read back: what it holds.
func ExampleOpen() {
	s, err := replay.Open("../testdata/recordings/spdy-concurrent.pcapng")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Describe())
	for _, r := range s.Requests()[:2] {
		fmt.Printf("request %s to port %d: %d bytes to the pod, %d back\n", r.ID, r.Port, len(r.ToPod), len(r.FromPod))
	}
	// Output:
	// 6 legs, 14 connections, 3 port-forward sessions (1 on the client's leg, SPDY/3.1), 5 requests to pod default/nginx
	// request 0 to port 80: 79 bytes to the pod, 399 back
	// request 1 to port 80: 79 bytes to the pod, 399 back
}

// A complete test of a port-forward client against a recorded apiserver:
// here the client under test is client-go's own port-forwarder over the
// WebSocket tunnel. In a Go test, replaytest.NewAPIServer(t, s) does the same
// as StartAPIServer and reports mismatches through t.
func ExampleStartAPIServer() {
	s, err := replay.Open("../testdata/recordings/websocket-get.pcapng")
	if err != nil {
		fmt.Println(err)
		return
	}
	a, err := replay.StartAPIServer(s, replay.WithReporter(func(m replay.Mismatch) { fmt.Println("mismatch:", m) }))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()

	// The client under test forwards a local port to the recorded pod.
	ns, pod, _ := s.Pod()
	u, _ := url.Parse(fmt.Sprintf("%s/api/v1/namespaces/%s/pods/%s/portforward", a.URL, ns, pod))
	dialer, err := portforward.NewSPDYOverWebsocketDialer(u, a.Config)
	if err != nil {
		fmt.Println(err)
		return
	}
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:80"}, stop, ready, io.Discard, os.Stderr)
	if err != nil {
		fmt.Println(err)
		return
	}
	go fw.ForwardPorts()
	<-ready
	ports, _ := fw.GetPorts()

	// Send what the recorded user sent through it, and read the answer.
	rec := s.Requests()[0]
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0].Local))
	if err != nil {
		fmt.Println(err)
		return
	}
	conn.Write(rec.ToPod)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	conn.Close()
	close(stop)
	a.Close()

	fmt.Println(resp.Status, len(body), "bytes")
	fmt.Println("requests played:", a.Played(), "mismatches:", len(a.Mismatches()))
	// Output:
	// 200 OK 274 bytes
	// requests played: 1 mismatches: 0
}
