//go:build linux

package lab

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pftap/pftap/leg"

	"github.com/pftap/pftap/internal/fakeapi"
	"github.com/pftap/pftap/internal/pki"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"

	"github.com/pftap/pftap/internal/nsenter"
)

// Start builds a lab. On error, and on ctx's cancellation during the
// start, everything it made is removed again.
func Start(ctx context.Context, cfg Config) (_ *Lab, err error) {
	t0 := time.Now()
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the lab needs root (CAP_SYS_ADMIN to make network namespaces, CAP_NET_ADMIN for veths)")
	}
	made := &Lab{cfg: cfg, CPNetns: cfg.Name + "-cp", NodeNetns: cfg.Name + "-node", PodNetns: cfg.Name + "-pod"}
	if cfg.OtherPod != "" {
		made.OtherPodNetns = cfg.Name + "-pod2"
	}
	// l, not the result: the closers the lab collects refer to it, and a
	// failed start returns nil while they run.
	l := made
	defer func() {
		if err != nil {
			made.Close()
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
		if err := os.MkdirAll(l.dir, 0o700); err != nil {
			return nil, err
		}
	}
	// Choosing a subnet and claiming it with the host link must not
	// interleave with another lab's start, in this process or another.
	unlock, err := lockNetworks()
	if err != nil {
		return nil, err
	}
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	subnet, err := pickSubnet(cfg.Subnet)
	if err != nil {
		return nil, err
	}
	a := plan(subnet)
	l.addr = a
	l.cfg.Subnet = subnet
	if err := l.writeState(); err != nil {
		return nil, err
	}

	// Namespaces and links. containerd makes the pod's namespace itself,
	// through CNI.
	own := []string{l.CPNetns, l.NodeNetns, l.PodNetns}
	if cfg.Runtime == RuntimeContainerd {
		own, l.PodNetns = own[:2], ""
	}
	if l.OtherPodNetns != "" {
		own = append(own, l.OtherPodNetns)
	}
	for _, ns := range own {
		if err := nsenter.Create(ns); err != nil {
			return nil, err
		}
		ns := ns
		l.closers = append(l.closers, func() error { return nsenter.Delete(ns) })
	}
	l.closers = append(l.closers, func() error {
		if made.hostLinkIndex != 0 {
			deleteHostLinkIndex(made.hostLinkIndex)
		}
		return nil
	})
	if err := wire(a, l.CPNetns, l.NodeNetns, l.PodNetns); err != nil { // no PodNetns: no node–pod veth
		// Still under the lock: the name is ours to remove.
		deleteHostLink(a.hostLink)
		return nil, err
	}
	if lk, err := hostLinkIndex(a.hostLink); err == nil {
		l.hostLinkIndex = lk
	}
	if l.OtherPodNetns != "" {
		if err := wireOtherPod(a, l.NodeNetns, l.OtherPodNetns); err != nil {
			deleteHostLink(a.hostLink)
			return nil, err
		}
	}
	unlock()
	locked = false
	ca, err := pki.New(cfg.Name)
	if err != nil {
		return nil, err
	}
	l.CA = ca.PEM
	l.caPool = ca.Pool

	// The pod and its app: made by containerd when it is the runtime.
	sandbox := "sandbox-" + cfg.Name
	if cfg.Runtime == RuntimeContainerd {
		if err := l.startContainerd(ctx); err != nil {
			return nil, err
		}
		sandbox = l.containerd.sandbox
		a = l.addr // the pod's IP is CNI's
	} else if err := l.startApp(ctx); err != nil {
		return nil, err
	}
	if l.OtherPodNetns != "" {
		ln, err := listenIn(l.OtherPodNetns, net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.AppPort)))
		if err != nil {
			return nil, fmt.Errorf("app listener in the second pod: %w", err)
		}
		l.otherApp = NewApp()
		go l.otherApp.Serve(ln)
		l.closers = append(l.closers, l.otherApp.Close)
	}

	// The node: the runtime's streaming server and the kubelet (pftap's
	// own; the real one is started once the apiserver is up).
	kcert, err := ca.Issue("pftap-lab-node", []net.IP{a.node.AsSlice()}, []string{"pftap-lab-node"}, false)
	if err != nil {
		return nil, err
	}
	var k *kubelet
	var rt *runtime
	if cfg.KubeletBinary == "" {
		if k, rt, err = l.startNode(cfg, a, sandbox, ca, kcert); err != nil {
			return nil, err
		}
	}

	// The control plane.
	// The host's address too: a middlebox there presents the same
	// certificate, as a TLS-terminating gateway would the cluster's.
	acert, err := ca.Issue("kube-apiserver", []net.IP{a.cp.AsSlice(), a.host.AsSlice()}, []string{"kubernetes", "kubernetes.default"}, false)
	if err != nil {
		return nil, err
	}
	l.apiCert = acert
	clientCert, err := ca.Issue("system:kube-apiserver-kubelet-client", nil, nil, true)
	if err != nil {
		return nil, err
	}
	toKubelet := &http.Transport{DialContext: nsDialer(l.CPNetns),
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12}}
	scheme := "https"
	if cfg.Plain {
		scheme = "http"
		toKubelet.TLSClientConfig = nil
	}
	kubeletURL := &url.URL{Scheme: scheme, Host: netip.AddrPortFrom(a.node, KubeletPort).String(),
		Path: "/portForward/" + cfg.Namespace + "/" + cfg.Pod}
	// Pods created through the API (pftap's agent) run on the node's
	// network, started in-process as the node would start the container.
	l.hosts = newHostPods("pftap-lab-node", a.node.String(), func(p *corev1.Pod, ended func(error)) (func(), error) { return l.runAgentPod(p, rt, ended) })
	l.closers = append(l.closers, func() error { l.hosts.stopAll(); return nil })
	if k != nil {
		k.hostPod = func(ns, name string) (string, string, bool) {
			if ns == cfg.Namespace && name == cfg.OtherPod && cfg.OtherPod != "" {
				return "sandbox-" + name, l.OtherPodNetns, true
			}
			if l.hosts.get(ns, name) == nil {
				return "", "", false
			}
			return "sandbox-" + name, l.NodeNetns, true
		}
	}
	if cfg.APIServerBinary != "" {
		// The real kube-apiserver: the node's pods are those its loop
		// runs (or the real kubelet's).
		if k != nil {
			k.hostPod = func(ns, name string) (string, string, bool) {
				if !l.realAPI.runs(ns, name) {
					return "", "", false
				}
				return "sandbox-" + name, l.NodeNetns, true
			}
		}
		if err := l.startRealAPI(ctx, ca, a, acert, clientCert, kcert, rt); err != nil {
			return nil, err
		}
		l.APIServer = &url.URL{Scheme: "https", Host: netip.AddrPortFrom(a.cp, APIServerPort).String()}
		return l.finish(t0, ctx)
	}
	var declared []string
	if cfg.declaresWebSockets() {
		declared = []string{FeatureExtendWebSocketsToKubelet}
	}
	var other *corev1.Pod
	if cfg.OtherPod != "" {
		other = fakeapi.Pod(cfg.Namespace, cfg.OtherPod, a.pod2.String(), time.Now())
	}
	api := &apiserver{token: cfg.Token, version: cfg.Kubernetes, refuseWS: cfg.RefuseWebSocket, other: other,
		pod:       fakeapi.Pod(cfg.Namespace, cfg.Pod, a.pod.String(), time.Now()),
		node:      fakeapi.Node("pftap-lab-node", a.node.String(), cfg.Kubelet.GitVersion(), declared, time.Now()),
		transport: toKubelet, hosts: l.hosts, deny: cfg.DenyPortForward, location: func(r *http.Request) (*url.URL, error) {
			u := *kubeletURL
			// .../namespaces/NS/pods/NAME/portforward → /portForward/NS/NAME
			if parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/"); len(parts) == 7 {
				u.Path = "/portForward/" + parts[3] + "/" + parts[5]
			}
			return &u, nil
		}}
	al, err := listenIn(l.CPNetns, netip.AddrPortFrom(a.cp, APIServerPort).String())
	if err != nil {
		return nil, fmt.Errorf("apiserver listener: %w", err)
	}
	l.APIServer = &url.URL{Scheme: scheme, Host: al.Addr().String()}
	apiTLS := &tls.Config{Certificates: []tls.Certificate{acert}, MinVersion: tls.VersionTLS12}
	if cfg.Plain {
		apiTLS = nil
	}
	l.serve(al, api, apiTLS, "L1")
	return l.finish(t0, ctx)
}

// startNode starts pftap's own node: the runtime's streaming server
// in-process (when the runtime streams) and the kubelet on :10250, built
// from upstream's streaming and proxy code.
func (l *Lab) startNode(cfg Config, a addressing, sandbox string, ca *pki.CA, kcert tls.Certificate) (*kubelet, *runtime, error) {
	k := &kubelet{runtime: cfg.Runtime, namespace: cfg.Namespace, pod: cfg.Pod, uid: podUID, sandbox: sandbox, podNetns: l.PodNetns,
		nodeDial: nsDialer(l.NodeNetns), translates: cfg.KubeletTranslates(), httpsURL: cfg.RuntimeHTTPS}
	var rt *runtime
	if StreamsThroughRuntime(cfg.Runtime) {
		// The in-process streaming server serves the pod (cri-streaming)
		// and the pods the lab runs itself (pftap's agent, with any
		// runtime that streams).
		rt = &runtime{netns: map[string]string{}}
		if cfg.Runtime == RuntimeCRIStreaming {
			rt.netns[sandbox] = l.PodNetns
			if l.OtherPodNetns != "" {
				rt.netns["sandbox-"+cfg.OtherPod] = l.OtherPodNetns
			}
		}
		sl, err := listenIn(l.NodeNetns, "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("streaming server listener: %w", err)
		}
		addr := sl.Addr().(*net.TCPAddr)
		scfg := streaming.DefaultConfig
		scfg.Addr = addr.String()
		scfg.BaseURL = &url.URL{Scheme: "http", Host: addr.String()}
		ss, err := streaming.NewServer(scfg, rt)
		if err != nil {
			sl.Close()
			return nil, nil, err
		}
		k.streaming = ss
		l.streaming, l.sandbox, l.runtime = ss, sandbox, rt
		if c := l.containerd; c != nil {
			k.cri = c.portForwardURL
		} else {
			l.StreamingAddr = addr
		}
		// Its connections are kept, so that KillRuntime can cut them all.
		l.runtimeConns = &connSet{conns: map[net.Conn]bool{}}
		l.serve(tapListener{sl, l.runtimeConns.add}, ss, nil, "")
	}
	kl, err := listenIn(l.NodeNetns, netip.AddrPortFrom(a.node, KubeletPort).String())
	if err != nil {
		return nil, nil, fmt.Errorf("kubelet listener: %w", err)
	}
	kubeletTLS := &tls.Config{Certificates: []tls.Certificate{kcert}, ClientCAs: ca.Pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	if cfg.Plain {
		kubeletTLS = nil
	}
	l.serve(kl, k, kubeletTLS, "L2")
	return k, rt, nil
}

// finish writes the kubeconfig and the state of a lab that is up.
func (l *Lab) finish(t0 time.Time, ctx context.Context) (*Lab, error) {
	switch l.cfg.Middlebox {
	case "":
	case MiddleboxHTTPSProxy:
		// The client's own proxy: the kubeconfig's proxy-url.
		u, err := l.startHTTPSProxy(l.addr, l.apiCert, l.APIServer)
		if err != nil {
			return nil, err
		}
		l.Proxy = u
	default:
		u, err := l.startMiddlebox(l.addr, l.apiCert, l.APIServer)
		if err != nil {
			return nil, err
		}
		l.Direct, l.APIServer = l.APIServer, u
	}
	cfg := l.cfg
	l.Kubeconfig = cfg.Kubeconfig
	if l.Kubeconfig == "" {
		l.Kubeconfig = filepath.Join(l.dir, "kubeconfig")
	}
	if err := os.WriteFile(l.Kubeconfig, []byte(l.kubeconfig()), 0o600); err != nil {
		return nil, err
	}
	if cfg.Kubeconfig != "" {
		l.closers = append(l.closers, func() error { return os.Remove(cfg.Kubeconfig) })
	}
	l.legs()
	if err := l.writeState(); err != nil {
		return nil, err
	}
	l.Ready = time.Since(t0)
	return l, ctx.Err()
}

// Ports the lab's servers listen on.
const (
	APIServerPort = 6443
	KubeletPort   = 10250
)

const podUID = "0e3d5c0a-6f2b-4c36-9a2e-70f7a4b1c0de"

// serve serves h on ln (with TLS when cfg is set) until Close; leg names
// the connections for Config.TapConn.
func (l *Lab) serve(ln net.Listener, h http.Handler, cfg *tls.Config, leg string) {
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	if l.cfg.TapConn != nil && leg != "" {
		ln = tapListener{ln, func(c net.Conn) net.Conn { return l.cfg.TapConn(leg, c) }}
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: quietLog}
	go srv.Serve(ln)
	l.closers = append(l.closers, srv.Close)
}

func (l *Lab) startApp(ctx context.Context) error {
	cfg := l.cfg
	switch cfg.App {
	case AppBuiltin:
		bind := "127.0.0.1"
		if cfg.AppOnPodIP {
			bind = l.addr.pod.String() // as an app bound to its pod's IP
		}
		ln, err := listenIn(l.PodNetns, net.JoinHostPort(bind, strconv.Itoa(cfg.AppPort)))
		if err != nil {
			return fmt.Errorf("app listener in the pod: %w", err)
		}
		l.App = NewApp()
		go l.App.Serve(ln)
		l.closers = append(l.closers, l.App.Close)
		return nil
	case AppNginx:
		conf, err := l.nginxFiles()
		if err != nil {
			return err
		}
		cmd, err := l.startInPod("nginx", nginxPath, "-c", conf, "-p", l.dir)
		if err != nil {
			return err
		}
		return l.waitListening(ctx, cfg.AppPort, 5*time.Second, "nginx", cmd)
	default:
		cmd, err := l.startInPod("app", "sh", "-c", cfg.App)
		if err != nil {
			return err
		}
		return l.waitListening(ctx, cfg.AppPort, 5*time.Second, "app", cmd)
	}
}

// nginxFiles writes nginx's configuration and page into the lab's
// directory and returns the configuration's path.
func (l *Lab) nginxFiles() (string, error) {
	if _, err := os.Stat(nginxPath); err != nil {
		return "", errors.New("--app nginx needs Debian's nginx (apt-get install nginx-light)")
	}
	www := filepath.Join(l.dir, "www")
	if err := os.MkdirAll(www, 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte(WelcomePage), 0o600); err != nil {
		return "", err
	}
	conf := filepath.Join(l.dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConfig(l.dir, l.cfg.AppPort)), 0o600); err != nil {
		return "", err
	}
	// nginx makes its logs and pid file 0644; made first, they keep 0600.
	for _, log := range []string{"nginx-error.log", "nginx-access.log", "nginx.pid"} {
		if err := os.WriteFile(filepath.Join(l.dir, log), nil, 0o600); err != nil {
			return "", err
		}
	}
	return conf, nil
}

func (l *Lab) kubeconfig() string {
	o := pki.KubeconfigOptions{Name: l.cfg.Name, Server: l.APIServer.String(), Token: l.cfg.Token, Namespace: l.cfg.Namespace}
	if l.Proxy != nil {
		o.ProxyURL = l.Proxy.String()
	}
	if !l.cfg.Plain {
		o.CAPEM = l.CA
	}
	return pki.Kubeconfig(o)
}

// legs describes the hops of the chain for capture.
func (l *Lab) legs() {
	a := l.addr
	api := netip.AddrPortFrom(a.cp, APIServerPort)
	kub := netip.AddrPortFrom(a.node, KubeletPort)
	l.Legs = []Leg{
		{ID: leg.L1, Name: "client → apiserver", Netns: "", Interface: a.hostLink, Server: api, TLS: !l.cfg.Plain,
			About: "kubectl (or pftap) on the host to the apiserver: the port-forward upgrade, over " + overWhat(l.cfg.Plain)},
		{ID: leg.L2, Name: "apiserver → kubelet", Netns: l.CPNetns, Interface: "eth1", Server: kub, TLS: !l.cfg.Plain,
			About: "the apiserver's upgrade-aware proxy to the kubelet's /portForward, over " + overWhat(l.cfg.Plain)},
	}
	if StreamsThroughRuntime(l.cfg.Runtime) {
		ap, _ := netip.ParseAddrPort(l.StreamingAddr.String())
		l.Legs = append(l.Legs, Leg{ID: leg.L3, Name: "kubelet → runtime", Netns: l.NodeNetns, Interface: "lo", Server: ap,
			About: "the kubelet proxies to the runtime's streaming server on the node's loopback, plain HTTP"})
	}
	l.Legs = append(l.Legs,
		Leg{ID: leg.L4, Name: "runtime → app", Netns: l.PodNetns, Interface: "lo", Server: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(l.cfg.AppPort)),
			About: "inside the pod's network namespace, to localhost:" + strconv.Itoa(l.cfg.AppPort)},
		Leg{ID: leg.Witness, Name: "pod eth0", Netns: l.PodNetns, Interface: "eth0", Server: netip.AddrPortFrom(a.pod, uint16(l.cfg.AppPort)),
			About: "the pod's own interface: port-forward traffic never crosses it"})
	if c := l.containerd; c != nil {
		l.Legs[2].About = "containerd's streaming server on the node's loopback, plain HTTP (its URL from the CRI PortForward RPC)"
		l.Legs[3].About = "inside the sandbox's network namespace (" + filepath.Base(c.netns) + ", made by CNI), containerd's dial to localhost:" + strconv.Itoa(l.cfg.AppPort)
		l.Legs[4].About = "the pod's eth0 on the CNI bridge: port-forward traffic never crosses it"
	}
	if l.cfg.Runtime == RuntimeSocat {
		l.Legs[2].Name = "socat → app"
		l.Legs[2].About = "socat, run by the kubelet with nsenter in the pod's namespace, to localhost:" + strconv.Itoa(l.cfg.AppPort)
	}
}

// Close stops every server and process and removes every namespace, link
// and file the lab made. It is safe to call more than once.
func (l *Lab) Close() error {
	t0 := time.Now()
	var errs []error
	for i := len(l.closers) - 1; i >= 0; i-- {
		if err := l.closers[i](); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	l.closers = nil
	if l.ownDir && l.dir != "" {
		errs = append(errs, os.RemoveAll(l.dir))
	}
	l.dir = ""
	l.removeState()
	l.Gone = time.Since(t0)
	return errors.Join(errs...)
}

// OtherAppLog is what the second pod's app logged (Config.OtherPod).
func (l *Lab) OtherAppLog() []AppRequest {
	if l.otherApp == nil {
		return nil
	}
	return l.otherApp.Log()
}

// AppLog is what the built-in app logged: the requests it served.
func (l *Lab) AppLog() []AppRequest {
	switch {
	case l.App != nil:
		return l.App.Log()
	case l.containerd != nil && l.cfg.App == AppBuiltin:
		return l.containerd.appLog()
	}
	return nil
}

const nginxPath = "/usr/sbin/nginx"

// RuntimeVersion is the containerd daemon's version ("" for the runtimes
// that are not a daemon).
func (l *Lab) RuntimeVersion() string {
	if l.containerd == nil {
		return ""
	}
	return containerdVersion(l.cfg.containerdBinary())
}

// ContainerdAddress is the socket of the lab's containerd ("" unless the
// runtime is RuntimeContainerd): for ctr and crictl.
func (l *Lab) ContainerdAddress() string {
	if l.containerd == nil {
		return ""
	}
	return l.containerd.sock
}

// Dir is the lab's directory (kubeconfig, logs, nginx files).
func (l *Lab) Dir() string { return l.dir }

// PodIP is the pod's address on eth0.
func (l *Lab) PodIP() netip.Addr { return l.addr.pod }

// HostLink is the name of the host's end of the veth to the control plane.
func (l *Lab) HostLink() string { return l.addr.hostLink }

func overWhat(plain bool) string {
	if plain {
		return "plain HTTP (a plain lab)"
	}
	return "TLS"
}

type tapListener struct {
	net.Listener
	wrap func(net.Conn) net.Conn
}

func (t tapListener) Accept() (net.Conn, error) {
	c, err := t.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return t.wrap(c), nil
}

// PortForwardURL asks the lab's runtime for a port-forward URL on its
// streaming server, as the kubelet does for every port-forward (the
// runtimes that stream only). The URL is reachable from the node's
// namespace: see DialNode.
func (l *Lab) PortForwardURL() (*url.URL, error) {
	if c := l.containerd; c != nil {
		return c.portForwardURL(context.Background(), c.sandbox)
	}
	if l.streaming == nil {
		return nil, fmt.Errorf("the %s runtime has no streaming server", l.cfg.Runtime)
	}
	resp, err := l.streaming.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: l.sandbox})
	if err != nil {
		return nil, err
	}
	return url.Parse(resp.Url)
}

// DialNode dials addr from inside the node's network namespace, where the
// kubelet and the runtime's streaming server listen.
func (l *Lab) DialNode(ctx context.Context, network, addr string) (net.Conn, error) {
	return nsDialer(l.NodeNetns)(ctx, network, addr)
}

// agentPort is where a pftap agent listens when its command names no
// --listen (agent.Port; the lab does not link the agent in: it runs it).
const agentPort = 10299

// runAgentPod runs a pftap agent pod as the node would run its container:
// the pftap binary (Config.AgentBinary, or this program) as a process of
// its own in the node's network namespace, with the pod's command after
// "pftap agent" and the pod's environment (its token and certificate), its
// output in LABDIR/agent-NAME.log. The pod runs once the agent listens.
// The runtime learns its sandbox, so that port-forward to it works. When
// the agent ends by itself (--once, --exit-when-idle), ended is called, as
// the node reports a container that exited.
func (l *Lab) runAgentPod(p *corev1.Pod, rt *runtime, ended func(error)) (func(), error) {
	c := p.Spec.Containers[0]
	bin := l.cfg.AgentBinary
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("the agent pod: this program's path: %w", err)
		}
		bin = exe
	}
	port := agentPort
	for i, a := range c.Command {
		if a == "--listen" && i+1 < len(c.Command) {
			if ap, err := netip.ParseAddrPort(c.Command[i+1]); err == nil {
				port = int(ap.Port())
			}
		}
	}
	argv := append([]string{"--net=" + nsenter.Path(l.NodeNetns), bin}, c.Command[1:]...)
	cmd := exec.Command("nsenter", argv...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	for _, e := range c.Env {
		cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
	}
	if prof := os.Getenv("PFTAP_AGENT_CPUPROFILE"); prof != "" {
		// A CPU profile of the agent (for the benchmarks).
		cmd.Env = append(cmd.Env, "PFTAP_CPUPROFILE="+prof)
	}
	logPath := filepath.Join(l.dir, "agent-"+p.Name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start the agent pod's pftap: %w", err)
	}
	logf.Close()
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	stopped := make(chan struct{})
	var werr error
	go func() {
		werr = cmd.Wait()
		close(exited)
		select {
		case <-stopped: // deleted
			return
		default:
		}
		if werr != nil {
			werr = fmt.Errorf("%v%s", werr, lastLines(logPath, "", 1))
		}
		ended(werr)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() { close(stopped) })
		syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-pid, syscall.SIGKILL)
			<-exited
		}
		if rt != nil {
			rt.mu.Lock()
			delete(rt.netns, "sandbox-"+p.Name)
			rt.mu.Unlock()
		}
	}
	// Running once it listens, as a readiness probe would say.
	deadline := time.Now().Add(20 * time.Second)
	for !inNetns(pid, l.NodeNetns) || !listening(pid, port) {
		select {
		case <-exited:
			stop()
			return nil, fmt.Errorf("the agent exited at start: %v%s", werr, lastLines(logPath, "", 2))
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("the agent did not listen on :%d within 20s%s", port, lastLines(logPath, "", 2))
		}
		time.Sleep(5 * time.Millisecond)
	}
	sandbox := "sandbox-" + p.Name
	if rt != nil {
		rt.mu.Lock()
		rt.netns[sandbox] = l.NodeNetns
		rt.mu.Unlock()
	}
	return stop, nil
}

// inNetns says whether process pid is in the named network namespace yet
// (nsenter enters it before it runs the agent).
func inNetns(pid int, ns string) bool {
	var a, b syscall.Stat_t
	if syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &a) != nil || syscall.Stat(nsenter.Path(ns), &b) != nil {
		return false
	}
	return a.Ino == b.Ino && a.Dev == b.Dev
}

// listening says whether a TCP socket listens on port in the network
// namespace of process pid (its /proc/PID/net/tcp).
func listening(pid, port int) bool {
	want := fmt.Sprintf(":%04X ", port)
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			fs := strings.Fields(line)
			if len(fs) > 3 && fs[3] == "0A" && strings.HasSuffix(fs[1]+" ", want) {
				return true
			}
		}
	}
	return false
}

// KillRuntime makes the runtime's streaming server die under its
// port-forwards, as a crash would: containerd is killed with SIGKILL; the
// in-process server's connections are reset all at once.
func (l *Lab) KillRuntime() error {
	if c := l.containerd; c != nil && c.cmd != nil && c.cmd.Process != nil {
		return c.cmd.Process.Signal(syscall.SIGKILL)
	}
	if l.runtimeConns == nil {
		return fmt.Errorf("the %s runtime has no streaming server", l.cfg.Runtime)
	}
	l.runtimeConns.reset()
	return nil
}

// FreezeRuntime makes the runtime's streaming server hang: it reads
// nothing more from its connections, so that a new stream's SYN_STREAM is
// never answered (containerd: the daemon stopped with SIGSTOP, and
// continued when the lab closes).
func (l *Lab) FreezeRuntime() error {
	if c := l.containerd; c != nil && c.cmd != nil && c.cmd.Process != nil {
		c.frozen = true
		if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			return err
		}
		// The stop reaches each thread as it next runs: wait until every
		// one is stopped, so that nothing sent from now on is answered.
		waitStopped(c.cmd.Process.Pid, time.Second)
		return nil
	}
	if l.runtimeConns == nil {
		return fmt.Errorf("the %s runtime has no streaming server", l.cfg.Runtime)
	}
	l.runtimeConns.frozen.Store(true)
	return nil
}

// waitStopped waits, for at most d, until every thread of pid is in the
// stopped state.
func waitStopped(pid int, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		stopped := len(tasks) > 0
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			// The state follows the command's closing parenthesis.
			if i := bytes.LastIndexByte(b, ')'); err != nil || i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
				stopped = false
				break
			}
		}
		if stopped {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// connSet keeps a listener's connections; frozen, they read nothing.
type connSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]bool
	frozen atomic.Bool
}

func (s *connSet) add(c net.Conn) net.Conn {
	fc := &freezableConn{Conn: c, set: s, closed: make(chan struct{})}
	s.mu.Lock()
	s.conns[fc] = true
	s.mu.Unlock()
	return fc
}

// freezableConn blocks its reads while its set is frozen.
type freezableConn struct {
	net.Conn
	set    *connSet
	once   sync.Once
	closed chan struct{}
}

func (c *freezableConn) Read(b []byte) (int, error) {
	if c.set.frozen.Load() {
		<-c.closed
		return 0, net.ErrClosed
	}
	return c.Conn.Read(b)
}

func (c *freezableConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// reset closes every connection with an RST.
func (s *connSet) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if fc, ok := c.(*freezableConn); ok {
			if tc, ok := fc.Conn.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
		}
		c.Close()
		delete(s.conns, c)
	}
}

// HostPodLog is what was done through the lab's API to the pods it runs
// besides its app's ("create NS/NAME", "watch NS SELECTOR", "delete NS/NAME").
func (l *Lab) HostPodLog() []string {
	if l.hosts == nil {
		return nil
	}
	return l.hosts.Log()
}

// RemoveSandbox makes the runtime forget the pod's sandbox, as when the pod
// is deleted or restarted under a running port-forward: the next request
// gets "pod sandbox not found" on its error stream (the runtimes that
// stream; with containerd the sandbox is stopped and removed for real).
func (l *Lab) RemoveSandbox() {
	if c := l.containerd; c != nil {
		c.removeSandbox()
		return
	}
	if l.runtime == nil {
		return
	}
	l.runtime.mu.Lock()
	delete(l.runtime.netns, l.sandbox)
	l.runtime.mu.Unlock()
}
