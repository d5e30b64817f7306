package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"k8s.io/cri-streaming/pkg/streaming"

	"github.com/pftap/pftap/internal/nsenter"
)

// Prefix starts the name of everything a lab creates, so that `pftap lab
// clean` and leak checks can find it.
const Prefix = "pftap-"

// Config says what lab to build.
type Config struct {
	// Name is the lab's unique name, used as a prefix for its namespaces
	// and files. Default: "pftap-<pid>-<n>".
	Name string
	// Namespace and Pod name the lab's pod. Default: "default", "nginx".
	Namespace, Pod string
	// AppPort is the port the built-in app listens on in the pod. Default 80.
	AppPort int
	// NoWebSocket makes the apiserver refuse WebSocket port-forward like a
	// pre-1.31 apiserver, so that clients fall back to SPDY.
	NoWebSocket bool
	// Token is the bearer token the apiserver requires; "" requires none.
	// (Over plain HTTP, client-go does not send a bearer token at all.)
	Token string
	// Dir is where the kubeconfig goes; default: a new temporary directory,
	// removed on Close.
	Dir string
}

// Lab is a running chain.
type Lab struct {
	cfg Config
	// PodNetns is the name of the pod's network namespace (/run/netns/NAME).
	PodNetns string
	// APIServer is the apiserver's URL.
	APIServer *url.URL
	// StreamingAddr is the runtime streaming server's address.
	StreamingAddr *net.TCPAddr
	// AppAddr is where the app listens inside the pod.
	AppAddr *net.TCPAddr
	// Kubeconfig is the path of a kubeconfig for the lab.
	Kubeconfig string
	// App is the built-in app.
	App *App

	apiSrv    *http.Server
	streamSrv *http.Server
	ownDir    bool
	dir       string
	closers   []func() error
}

var labCount atomic.Int64

// Config returns the configuration the lab was built from, defaults filled in.
func (l *Lab) Config() Config { return l.cfg }

// Start builds a lab. On error everything it made is removed again.
func Start(ctx context.Context, cfg Config) (l *Lab, err error) {
	if cfg.Name == "" {
		cfg.Name = fmt.Sprintf("%s%d-%d", Prefix, os.Getpid(), labCount.Add(1))
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if cfg.Pod == "" {
		cfg.Pod = "nginx"
	}
	if cfg.AppPort == 0 {
		cfg.AppPort = 80
	}
	l = &Lab{cfg: cfg, PodNetns: cfg.Name + "-pod"}
	defer func() {
		if err != nil {
			l.Close()
			l = nil
		}
	}()
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", cfg.Name+"-")
		if err != nil {
			return nil, err
		}
		l.dir, l.ownDir = d, true
	} else {
		l.dir = cfg.Dir
	}

	// The pod: a network namespace with lo up, and the app on localhost.
	if err := nsenter.Create(l.PodNetns); err != nil {
		return nil, err
	}
	l.closers = append(l.closers, func() error { return nsenter.Delete(l.PodNetns) })
	var appL net.Listener
	err = nsenter.Do(l.PodNetns, func() error {
		var err error
		appL, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(cfg.AppPort))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("app listener in pod namespace: %w", err)
	}
	l.AppAddr = appL.Addr().(*net.TCPAddr)
	l.App = NewApp()
	go l.App.Serve(appL)
	l.closers = append(l.closers, l.App.Close)

	// The runtime's streaming server on the node's loopback, plain HTTP.
	sandbox := "sandbox-" + cfg.Name
	rt := &runtime{netns: map[string]string{sandbox: l.PodNetns}}
	streamL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l.StreamingAddr = streamL.Addr().(*net.TCPAddr)
	scfg := streaming.DefaultConfig
	scfg.Addr = l.StreamingAddr.String()
	scfg.BaseURL = &url.URL{Scheme: "http", Host: l.StreamingAddr.String()}
	ss, err := streaming.NewServer(scfg, rt)
	if err != nil {
		streamL.Close()
		return nil, err
	}
	l.streamSrv = &http.Server{Handler: ss, ReadHeaderTimeout: 10 * time.Second}
	go l.streamSrv.Serve(streamL)
	l.closers = append(l.closers, l.streamSrv.Close)

	// The apiserver.
	api := &apiserver{token: cfg.Token, websocket: !cfg.NoWebSocket, sandbox: sandbox, streaming: ss,
		pod: labPod(cfg.Namespace, cfg.Pod, "", time.Now())}
	apiL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l.APIServer = &url.URL{Scheme: "http", Host: apiL.Addr().String()}
	l.apiSrv = &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	go l.apiSrv.Serve(apiL)
	l.closers = append(l.closers, l.apiSrv.Close)

	l.Kubeconfig = filepath.Join(l.dir, "kubeconfig")
	if err := os.WriteFile(l.Kubeconfig, []byte(l.kubeconfig()), 0o600); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Lab) kubeconfig() string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s
users:
- name: %[1]s
  user:%[3]s
contexts:
- name: %[1]s
  context:
    cluster: %[1]s
    user: %[1]s
    namespace: %[4]s
current-context: %[1]s
`, l.cfg.Name, l.APIServer, tokenLine(l.cfg.Token), l.cfg.Namespace)
}

func tokenLine(t string) string {
	if t == "" {
		return " {}"
	}
	return "\n    token: " + t
}

// NewToken returns a random bearer token for a lab.
func NewToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "pftap-lab-" + hex.EncodeToString(b)
}

// Close stops every server and removes every namespace and file the lab
// made. It is safe to call more than once.
func (l *Lab) Close() error {
	var errs []error
	for i := len(l.closers) - 1; i >= 0; i-- {
		if err := l.closers[i](); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	l.closers = nil
	if l.ownDir && l.dir != "" {
		errs = append(errs, os.RemoveAll(l.dir))
		l.dir = ""
	}
	return errors.Join(errs...)
}
