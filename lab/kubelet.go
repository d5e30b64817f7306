//go:build linux

package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	proxyutil "k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"k8s.io/apimachinery/pkg/util/proxy"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/portforward"

	"github.com/pftap/pftap/internal/nsenter"
)

// kubelet serves /portForward/NS/POD on the node's :10250.
type kubelet struct {
	runtime   string
	namespace string
	pod       string
	uid       string
	sandbox   string
	podNetns  string
	streaming streaming.Server
	// cri, when set, asks the real runtime (the CRI PortForward RPC) for
	// the pod's streaming URL; streaming serves the lab's own pods.
	cri      func(ctx context.Context, sandbox string) (*url.URL, error)
	nodeDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// translates: the kubelet's ExtendWebSocketsToKubelet gate is on
	// (1.36+), and it takes a WebSocket tunnel itself.
	translates bool
	// httpsURL: the pod's streaming URL comes back with https for a
	// plain-HTTP server (Config.RuntimeHTTPS).
	httpsURL bool
	// hostPod finds a pod the lab started through its API (pftap's
	// agent, on the host network): its sandbox and network namespace.
	hostPod func(ns, name string) (sandbox, netns string, ok bool)
}

func (k *kubelet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.URL.Path == "/healthz":
		io.WriteString(w, "ok")
		return
	case len(parts) < 3 || parts[0] != "portForward":
		http.NotFound(w, r)
		return
	}
	sandbox, podNetns := k.sandbox, k.podNetns
	if parts[1] != k.namespace || parts[2] != k.pod {
		var ok bool
		if k.hostPod != nil {
			sandbox, podNetns, ok = k.hostPod(parts[1], parts[2])
		}
		if !ok {
			http.Error(w, fmt.Sprintf("pod %s/%s not found on this node", parts[1], parts[2]), http.StatusNotFound)
			return
		}
	}
	if k.translates && wsstream.IsWebSocketRequestWithTunnelingProtocol(r) {
		// As (*Server).getPortForward does since 1.36: the runtime's
		// streaming URL (empty V4Options), and the apiserver's own
		// tunnelling handler in front of the proxy to it: the kubelet
		// answers the WebSocket and speaks SPDY to the runtime.
		loc, err := k.runtimeURL(r.Context(), sandbox)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		upgrade := proxy.NewUpgradeAwareHandler(loc, &http.Transport{DialContext: k.nodeDial}, false, true, plainResponder{})
		proxyutil.NewTunnelingHandler(upgrade).ServeHTTP(w, r)
		return
	}
	// Every kubelet reads the options first: a WebSocket request must
	// name its ports in the query (the v4 channel protocol), which a
	// WebSocket tunnel does not: 400 `query parameter "port" is required`.
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if k.runtime == RuntimeSocat {
		portforward.ServePortForward(w, r, socatForwarder{netns: nsenter.Path(podNetns)}, parts[2], k.uid, opts,
			4*time.Hour, 30*time.Second, portforward.SupportedProtocols)
		return
	}
	loc, err := k.runtimeURL(r.Context(), sandbox)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// As the kubelet does for a runtime that serves its own streams: proxy
	// the upgraded connection to the runtime's streaming server.
	h := proxy.NewUpgradeAwareHandler(loc, &http.Transport{DialContext: k.nodeDial}, false, true, plainResponder{})
	h.ServeHTTP(w, r)
}

// runtimeURL asks the runtime (CRI PortForward) where to stream the
// sandbox's port-forward.
func (k *kubelet) runtimeURL(ctx context.Context, sandbox string) (*url.URL, error) {
	if k.cri != nil && sandbox == k.sandbox {
		return k.cri(ctx, sandbox)
	}
	resp, err := k.streaming.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: sandbox})
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(resp.Url)
	if err == nil && k.httpsURL && sandbox == k.sandbox {
		u.Scheme = "https"
	}
	return u, err
}

type plainResponder struct{}

func (plainResponder) Error(w http.ResponseWriter, _ *http.Request, err error) {
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

// socatForwarder forwards a stream as the dockershim did: socat inside the
// pod's network namespace, its stdin and stdout the data stream.
type socatForwarder struct{ netns string }

func (f socatForwarder) PortForward(ctx context.Context, name, uid string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	cmd := exec.CommandContext(ctx, "nsenter", "--net="+f.netns, "socat", "-", "TCP4:localhost:"+strconv.Itoa(int(port)))
	cmd.Stdin = stream
	cmd.Stdout = stream
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// nsDialer dials from inside a network namespace.
func nsDialer(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := nsenter.Do(ns, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// listenIn opens a listener inside a network namespace.
func listenIn(ns, addr string) (net.Listener, error) {
	var l net.Listener
	err := nsenter.Do(ns, func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	})
	return l, err
}
