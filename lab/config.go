package lab

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pftap/pftap/internal/nsenter"
	"github.com/pftap/pftap/leg"

	"k8s.io/cri-streaming/pkg/streaming"
)

// Prefix starts the name of everything a lab creates (namespaces, links,
// files), so that `pftap lab clean` and leak checks can find it.
const Prefix = "pftap-"

// Runtimes a lab's node can use.
const (
	// RuntimeCRIStreaming: the kubelet asks the runtime for a streaming
	// URL and proxies to the runtime's streaming server on the node's lo,
	// which dials the app from inside the pod's namespace: upstream's
	// k8s.io/cri-streaming server, run in-process, as containerd 2.3+ and
	// CRI-O embed it. Four legs. The default: it needs nothing but Go.
	RuntimeCRIStreaming = "cri-streaming"
	// RuntimeContainerd runs the real containerd daemon (Debian's, with
	// its CRI plugin) in the node's namespace: the pod's sandbox is made
	// by containerd through CNI from images the lab builds and imports,
	// the kubelet calls the CRI PortForward RPC and proxies to
	// containerd's own streaming server. Four legs, L3 and L4 containerd's.
	RuntimeContainerd = "containerd"
	// RuntimeSocat: the kubelet serves port-forward itself and runs
	// `nsenter --net=POD socat - TCP4:localhost:PORT` per connection, the
	// dockershim way. Three legs.
	RuntimeSocat = "socat"
)

// Runtimes lists the runtimes, the default first.
var Runtimes = []string{RuntimeCRIStreaming, RuntimeContainerd, RuntimeSocat}

// StreamsThroughRuntime says whether the kubelet proxies to a runtime's
// streaming server (an L3 leg) rather than serving the streams itself.
func StreamsThroughRuntime(runtime string) bool {
	return runtime == RuntimeCRIStreaming || runtime == RuntimeContainerd
}

// Middleboxes a lab can put between the client and the apiserver, on the
// host's end of the lab's link (Config.Middlebox): the client's kubeconfig
// then names it, and it reaches the apiserver over the link.
const (
	// MiddleboxStripUpgrades is a TLS-terminating HTTP proxy that passes
	// requests on without their Connection and Upgrade headers, as
	// gateways that do not support upgrades do.
	MiddleboxStripUpgrades = "strip-upgrades"
	// MiddleboxIdleDrop is a TCP relay that resets both sides of a
	// connection that carried nothing for Config.IdleAfter, as a load
	// balancer's idle timeout does (60 s on ELB).
	MiddleboxIdleDrop = "idle-drop"
	// MiddleboxHTTPSProxy is the client's HTTPS proxy (the kubeconfig's
	// proxy-url, https://): TLS to the proxy, CONNECT to the apiserver,
	// and the apiserver's TLS inside that. Its connections, below its TLS,
	// go to TapConn as leg "proxy".
	MiddleboxHTTPSProxy = "https-proxy"
)

// Apps a lab's pod can run; any other Config.App is a shell command run in
// the pod's network namespace.
const (
	AppBuiltin = "builtin"
	AppNginx   = "nginx"
)

// Config says what lab to build. The zero value is the default lab.
type Config struct {
	// Name is the lab's unique name; its namespaces are NAME-cp, NAME-node
	// and NAME-pod. Default: "pftap-<pid>-<n>".
	Name string
	// Runtime is RuntimeCRIStreaming (default), RuntimeContainerd or
	// RuntimeSocat.
	Runtime string
	// App is AppBuiltin (default), AppNginx, or a shell command that must
	// listen on localhost:AppPort inside the pod.
	App string
	// AppOnPodIP makes the built-in app listen on the pod's IP only, not
	// on localhost, where port-forward dials it.
	AppOnPodIP bool
	// AppPort is the port the app listens on in the pod. Default 80.
	AppPort int
	// Namespace and Pod name the lab's pod. Default: "default", "nginx".
	Namespace, Pod string
	// OtherPod, when set, names a second pod in the same namespace, on the
	// same node, with a network namespace (NAME-pod2), an address and a
	// built-in app of its own: someone else's pod, for port-forwards that
	// are not the one being traced. The default runtime and pftap's own
	// apiserver only.
	OtherPod string
	// Kubernetes is the release the apiserver behaves as (default:
	// CurrentVersion; 1.23 with the socat runtime; 1.30 with
	// NoWebSocket), Kubelet the node's (default: the same): together they
	// choose what L2 carries (see Era).
	Kubernetes, Kubelet Version
	// KubeletGateOff turns the kubelet's ExtendWebSocketsToKubelet gate
	// off (1.36 and 1.37): it no longer declares the feature and refuses
	// a WebSocket tunnel, so the apiserver tunnels.
	KubeletGateOff bool
	// StaleDeclaredFeatures makes the Node declare ExtendWebSocketsToKubelet
	// whatever the kubelet's gate (a status left from before the kubelet
	// restarted with the gate off): the apiserver sends the WebSocket on,
	// and a kubelet that cannot take it answers 400.
	StaleDeclaredFeatures bool
	// NoWebSocket asks for an apiserver from before 1.31, which does not
	// tunnel WebSocket port-forward, so that clients fall back to SPDY
	// (Kubernetes 1.30 unless Kubernetes says otherwise).
	NoWebSocket bool
	// RefuseWebSocket makes the apiserver answer every WebSocket
	// port-forward upgrade with 400, whatever its version (as a proxy in
	// front of it that does not pass WebSocket would): the one way left to
	// make kubectl 1.38, which has no switch for it, fall back to SPDY.
	RefuseWebSocket bool
	// DenyPortForward makes the apiserver refuse pods/portforward as RBAC
	// does for a user without create on it (403), for testing diagnoses.
	DenyPortForward bool
	// RuntimeHTTPS makes the pod's streaming URL, as the runtime hands it
	// to the kubelet, say https for the runtime's plain-HTTP streaming
	// server (a runtime or shim with the scheme wrong): the kubelet then
	// opens TLS to a server that answers in plain HTTP. cri-streaming only.
	RuntimeHTTPS bool
	// APIServerBinary, when set, is a kube-apiserver binary (upstream's,
	// built from k8s.io/kubernetes) to run as the lab's control plane, on
	// Debian's etcd, instead of pftap's own apiserver: real
	// authentication, RBAC, admission and PortForwardREST's proxy-or-
	// tunnel decision. Kubernetes is then its version.
	APIServerBinary string
	// KubeletBinary, when set, is a kubelet binary (upstream's, built from
	// k8s.io/kubernetes) to run as the lab's node instead of pftap's own,
	// with APIServerBinary and RuntimeContainerd: it registers the node,
	// runs the pod through containerd, and serves :10250. Kubelet is then
	// its version.
	KubeletBinary string
	// ContainerdBinary is the containerd daemon RuntimeContainerd runs
	// (default: Debian's, containerd on PATH), such as a containerd 2.x
	// built from github.com/containerd/containerd/v2.
	ContainerdBinary string
	// Middlebox puts a proxy between the client and the apiserver
	// (MiddleboxStripUpgrades, MiddleboxIdleDrop); IdleAfter is the idle
	// timeout of MiddleboxIdleDrop (default 3 s).
	Middlebox string
	IdleAfter time.Duration
	// Token is the bearer token the apiserver requires; default: random.
	Token string
	// Plain serves the apiserver and the kubelet over plain HTTP instead of
	// TLS, so that every leg can be read from a packet capture. kubectl
	// sends no bearer token over plain HTTP, so a plain lab requires none.
	Plain bool
	// Subnet is the lab's private IPv4 /24; default: the first one in
	// DefaultSubnets that the host does not route.
	Subnet netip.Prefix
	// Dir holds the lab's files; default: a new temporary directory,
	// removed on Close.
	Dir string
	// Kubeconfig is where to write the kubeconfig; default: Dir/kubeconfig.
	Kubeconfig string
	// AgentBinary is the pftap binary the node runs for a pod of pftap
	// agent created through the API (trace --agent deploy): default, this
	// program. It runs as a process of its own in the node's namespace.
	AgentBinary string
	// TapConn, when set, is given every connection the apiserver (leg "L1")
	// and the kubelet (leg "L2") accept, after TLS, and the server uses what
	// it returns: a way to record the plaintext below TLS.
	TapConn func(leg string, c net.Conn) net.Conn
}

var quietLog = log.New(io.Discard, "", 0)

var labCount atomic.Int64

func (c *Config) defaults() error {
	if c.Name == "" {
		c.Name = fmt.Sprintf("%s%d-%d", Prefix, os.Getpid(), labCount.Add(1))
	}
	if len(c.Name) > 40 {
		return fmt.Errorf("lab name %q is longer than 40 characters", c.Name)
	}
	if c.Runtime == "" {
		c.Runtime = RuntimeCRIStreaming
	}
	switch c.Runtime {
	case RuntimeCRIStreaming, RuntimeContainerd, RuntimeSocat:
	default:
		return fmt.Errorf("unknown runtime %q (want %s)", c.Runtime, strings.Join(Runtimes, ", "))
	}
	if c.APIServerBinary != "" {
		if err := c.realAPIDefaults(); err != nil {
			return err
		}
	}
	if c.KubeletBinary != "" {
		if err := c.realKubeletDefaults(); err != nil {
			return err
		}
	}
	if err := c.checkContainerd(); err != nil {
		return err
	}
	if err := c.checkEra(); err != nil {
		return err
	}
	if c.App == "" {
		c.App = AppBuiltin
	}
	switch c.Middlebox {
	case "", MiddleboxStripUpgrades, MiddleboxIdleDrop, MiddleboxHTTPSProxy:
	default:
		return fmt.Errorf("unknown middlebox %q", c.Middlebox)
	}
	if c.AppOnPodIP && (c.App != AppBuiltin || c.Runtime == RuntimeContainerd) {
		return errors.New("the app bound to the pod's IP needs the built-in app in the lab's own pod (not containerd's)")
	}
	if c.RuntimeHTTPS && c.Runtime != RuntimeCRIStreaming {
		return fmt.Errorf("a mis-schemed streaming URL needs the %s runtime (the lab's own streaming server), not %s", RuntimeCRIStreaming, c.Runtime)
	}
	if c.Middlebox != "" && c.Plain {
		return errors.New("a middlebox needs a TLS lab")
	}
	if c.IdleAfter == 0 {
		c.IdleAfter = 3 * time.Second
	}
	if c.AppPort == 0 {
		c.AppPort = 80
	}
	if c.AppPort < 1 || c.AppPort > 65535 {
		return fmt.Errorf("app port %d out of range", c.AppPort)
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	if c.Pod == "" {
		c.Pod = "nginx"
	}
	if c.OtherPod != "" && (c.OtherPod == c.Pod || c.Runtime != RuntimeCRIStreaming || c.APIServerBinary != "") {
		return fmt.Errorf("a second pod %q needs another name than the first and the %s runtime with pftap's own apiserver", c.OtherPod, RuntimeCRIStreaming)
	}
	if c.Plain {
		c.Token = ""
	} else if c.Token == "" {
		c.Token = NewToken()
	}
	return nil
}

// checkContainerd refuses a containerd binary without the containerd
// runtime, or one that does not run.
func (c *Config) checkContainerd() error {
	if c.ContainerdBinary == "" {
		return nil
	}
	if c.Runtime != RuntimeContainerd {
		return fmt.Errorf("--containerd is the daemon of --runtime containerd, not of %s", c.Runtime)
	}
	out, err := exec.Command(c.ContainerdBinary, "--version").Output()
	if err != nil {
		return fmt.Errorf("--containerd %s: %v", c.ContainerdBinary, err)
	}
	if first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n"); !strings.HasPrefix(first, "containerd ") {
		return fmt.Errorf("--containerd %s: not a containerd (its --version said %q)", c.ContainerdBinary, first)
	}
	return nil
}

// NewToken returns a random bearer token for a lab.
func NewToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "pftap-lab-" + hex.EncodeToString(b)
}

// Leg is one hop of the chain, as capture needs it.
type Leg struct {
	// ID is the leg of the chain: L1 to L4, or the witness (the pod's
	// eth0). L2's capture point here is the wire (leg.L2Wire once
	// captured).
	ID leg.ID
	// Name says what the leg connects, such as "apiserver → kubelet".
	Name string
	// Netns is the network namespace to capture in ("" for the host's).
	Netns string
	// Interface to capture on in that namespace.
	Interface string
	// Server is the address the leg's connections go to.
	Server netip.AddrPort
	// TLS is true when the leg's bytes are encrypted on the wire.
	TLS bool
	// About is one sentence for people.
	About string
}

// Lab is a running chain.
type Lab struct {
	cfg Config
	// CPNetns, NodeNetns and PodNetns name the namespaces (/run/netns);
	// OtherPodNetns the second pod's (Config.OtherPod), or "".
	CPNetns, NodeNetns, PodNetns, OtherPodNetns string
	// APIServer is the apiserver's URL, reachable from the host (the
	// middlebox's, when there is one; Direct is then the apiserver's).
	APIServer, Direct *url.URL
	// Proxy is the client's HTTPS proxy (MiddleboxHTTPSProxy), which the
	// kubeconfig names as the cluster's proxy-url.
	Proxy *url.URL
	// CA is the lab CA's certificate (PEM).
	CA []byte
	// StreamingAddr is the runtime streaming server's address on the
	// node's loopback (containerd runtime only).
	StreamingAddr *net.TCPAddr
	// Kubeconfig is the path of a kubeconfig for the lab.
	Kubeconfig string
	// App is the built-in app, when the lab runs it.
	App *App
	// Legs are the hops to tap, in chain order, then the witness.
	Legs []Leg
	// Ready is how long Start took; Gone how long Close took.
	Ready, Gone time.Duration

	addr       addressing
	streaming  streaming.Server
	sandbox    string
	hosts      *hostPods
	runtime    *runtime
	containerd *containerd
	realAPI    *realAPI
	kubelet    *realKubelet
	// sysctls are the kernel settings saved before the real kubelet
	// changed them, kubeletDirs the fixed directories it made.
	sysctls       map[string]string
	kubeletDirs   []string
	runtimeConns  *connSet
	caPool        *x509.CertPool
	apiCert       tls.Certificate
	hostLinkIndex int
	ownDir        bool
	dir           string
	otherApp      *App
	pids          []int
	closers       []func() error
}

// Config returns the configuration the lab was built from, defaults filled in.
func (l *Lab) Config() Config { return l.cfg }

// ErrNotSupported is returned by Start on systems without network
// namespaces.
var ErrNotSupported = nsenter.ErrNotSupported

// addressing is a lab's plan: a /24 cut into three /30 links.
//
//	host  .1 ──(pftapNh | cp eth0)── .2  control plane  .5 ──(cp eth1 | node eth0)── .6  node  .9 ──(node eth1 | pod eth0)── .10  pod
type addressing struct {
	subnet                   netip.Prefix
	host, cp, cpToNode, node netip.Addr
	nodeToPod, pod           netip.Addr
	nodeToPod2, pod2         netip.Addr // the second pod's (Config.OtherPod)
	hostLink                 string
}

func plan(subnet netip.Prefix) addressing {
	b := subnet.Masked().Addr().As4()
	at := func(n byte) netip.Addr { c := b; c[3] = n; return netip.AddrFrom4(c) }
	return addressing{subnet: subnet, host: at(1), cp: at(2), cpToNode: at(5), node: at(6), nodeToPod: at(9), pod: at(10),
		nodeToPod2: at(13), pod2: at(14), hostLink: fmt.Sprintf("pftap%dh", b[2])}
}
