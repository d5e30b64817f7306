package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/pftap/pftap/internal/nsenter"
)

// runtime is the container runtime side of the lab, as containerd's CRI
// plugin does it: the streaming server (upstream k8s.io/cri-streaming)
// calls PortForward, which enters the pod's network namespace, dials
// localhost:PORT (IPv4, then IPv6) and copies bytes both ways.
type runtime struct {
	// netns maps a pod sandbox ID to its network namespace reference.
	mu    sync.Mutex
	netns map[string]string
}

func (r *runtime) Exec(context.Context, string, []string, io.Reader, io.WriteCloser, io.WriteCloser, bool, <-chan remotecommand.TerminalSize) error {
	return errors.New("exec is not part of pftap's lab")
}

func (r *runtime) Attach(context.Context, string, io.Reader, io.WriteCloser, io.WriteCloser, bool, <-chan remotecommand.TerminalSize) error {
	return errors.New("attach is not part of pftap's lab")
}

func (r *runtime) PortForward(ctx context.Context, sandbox string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	r.mu.Lock()
	ns, ok := r.netns[sandbox]
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("pod sandbox %q not found", sandbox)
	}
	var conn net.Conn
	err := nsenter.Do(ns, func() error {
		var errs []error
		for _, addr := range []string{"127.0.0.1", "::1"} {
			d := net.Dialer{Timeout: 5 * time.Second}
			c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(addr, strconv.Itoa(int(port))))
			if err == nil {
				conn = c
				return nil
			}
			errs = append(errs, err)
		}
		return fmt.Errorf("failed to connect to localhost:%d inside namespace %q, IPv4: %v IPv6: %v", port, sandbox, errs[0], errs[1])
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	go func() {
		// Client to app; the client's FIN becomes a FIN on the pod's lo.
		io.Copy(conn, stream)
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	// App to client: when the app closes, the forwarded connection ends.
	// Copy errors after the dial are the client going away, not a failure
	// to forward: like containerd, they are not sent on the error stream.
	io.Copy(stream, conn)
	return nil
}
