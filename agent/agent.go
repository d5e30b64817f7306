package agent

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pftap/pftap/leg"

	"github.com/pftap/pftap/capture"
	"github.com/pftap/pftap/internal/pki"
)

// Request is what trace asks for.
type Request struct {
	// Version is the protocol trace speaks (ProtocolVersion).
	Version int    `json:"version,omitempty"`
	Token   string `json:"token,omitempty"`
	// Probed acknowledges a probe of that many bytes, read in full.
	Probed int `json:"probed,omitempty"`
	// PodIP is the pod's IP: the agent finds its network namespace.
	PodIP string `json:"pod_ip"`
	// Frames asks for the frames of trace's session too (trace -w).
	Frames bool `json:"frames,omitempty"`
	// NodeWide asks for every connection of the node's legs, not only
	// trace's session's (refused by an agent not started allowing it).
	NodeWide bool `json:"node_wide,omitempty"`
	// Verbosity is the decoder's (as pftap decode -v).
	Verbosity int `json:"verbosity,omitempty"`
}

// Hello is the agent's answer, before the messages.
type Hello struct {
	// Version is the protocol the agent speaks (ProtocolVersion); an
	// agent of protocol 1 sends none.
	Version int    `json:"version,omitempty"`
	Node    string `json:"node,omitempty"`
	// Legs are the names of the legs the stream's interfaces carry, and
	// LegIDs their places in the chain.
	Legs   []string `json:"legs,omitempty"`
	LegIDs []leg.ID `json:"leg_ids,omitempty"`
	// LegsAbout say where the agent found each leg (the streaming ports,
	// the pod's namespace and how it was found), for people.
	LegsAbout []string `json:"legs_about,omitempty"`
	Error     string   `json:"error,omitempty"`
	// PodListeners are the TCP addresses listening in the pod's network
	// namespace when the session began ("127.0.0.1:80", "10.1.2.3:8080",
	// "[::]:443"): what trace needs to tell "nothing listens" from "the
	// app listens on the pod's IP only".
	PodListeners []string `json:"pod_listeners,omitempty"`
	// Excluded are the connections the agent leaves out of every leg:
	// the ones that carry its own session.
	Excluded []string `json:"excluded,omitempty"`
	// Probe, when set, says that this many bytes follow, to be read and
	// acknowledged (Request.Probed); the real Hello comes later.
	Probe int `json:"probe,omitempty"`
	// NodeWide: the agent sends every connection of its legs.
	NodeWide bool `json:"node_wide,omitempty"`
}

// VersionMismatch is the one line either side says when the other speaks
// another protocol version: mine is the speaker's, theirs the peer's (0:
// a peer from before versions, protocol 1), peer "trace" or "agent".
func VersionMismatch(mine, theirs int, peer string) string {
	if theirs == 0 {
		theirs = 1
	}
	newer := "a newer"
	if theirs < mine {
		newer = "an older"
	}
	if peer == "trace" {
		return fmt.Sprintf("this agent speaks protocol %d and the trace that connected speaks %d (%s pftap): run trace from the pftap this agent came from, or deploy an agent made by that trace's pftap (pftap agent image)", mine, theirs, newer)
	}
	return fmt.Sprintf("the agent speaks protocol %d and this trace speaks %d (the agent is %s pftap's): deploy an agent from this pftap (pftap agent image -o FILE, or --push REF, then --agent-image), or use the pftap the agent came with", theirs, mine, newer)
}

// MinTokenLen is the shortest token an agent accepts: a token opens every
// port-forward on the node to whoever holds it.
const MinTokenLen = 16

// KeepaliveEvery is how often trace tells the agent that it is still
// there, and Silence how long an agent waits for it before it ends the
// session (a trace killed, or cut off, without closing its connection).
const (
	KeepaliveEvery = 5 * time.Second
	Silence        = 20 * time.Second
)

// ErrIdle is returned by Serve when Options.ExitWhenIdle passed with no
// session.
var ErrIdle = errors.New("no trace session")

// ErrSessionEnded is returned by Serve when the one session of an agent
// with Options.Once has ended.
var ErrSessionEnded = errors.New("the agent's one session ended")

// Options of an agent.
type Options struct {
	// Token is the shared secret trace must present.
	Token string
	// Netns is the node's network namespace ("": the agent's own, as for
	// an agent on the host or in a hostNetwork pod).
	Netns string
	// KubeletPort is the kubelet's port (10250).
	KubeletPort int
	// StreamingPorts are the runtime streaming server's ports on the
	// node's lo; empty: every port listening on 127.0.0.1 but the
	// kubelet's and kube-proxy's.
	StreamingPorts []int
	// ClockOffset is added to every timestamp sent (to test trace's
	// estimate of the clock difference).
	ClockOffset time.Duration
	// Log receives one line per session.
	Log io.Writer
	// Certificate, when set, is the agent's TLS certificate (trace makes
	// one and pins it when it deploys the agent); otherwise a new
	// self-signed one is made.
	Certificate *tls.Certificate
	// ExitWhenIdle, when set, makes Serve return ErrIdle once no session
	// has been running for that long (from the start, and after each
	// session): a deployed agent ends when its trace is gone.
	ExitWhenIdle time.Duration
	// Once makes the token good for one session: once a session has
	// presented it, every later one is refused, and Serve returns
	// ErrSessionEnded when that session ends. A deployed agent's token
	// is in its pod's spec, which others may read; used once, by trace,
	// it is worth nothing to them.
	Once bool
	// NoProbe skips the probe that finds the agent's own connections
	// (for an agent that is not reached through the legs it taps).
	NoProbe bool
	// AllowNodeWide lets a trace ask for every connection on the node's
	// legs (Request.NodeWide), other sessions' included; off, the agent
	// sends each trace its own session only.
	AllowNodeWide bool
	// MaxSendRate bounds what the agent sends a trace, in bytes a second
	// (0: none): frames beyond it lose their payloads (trace -w keeps
	// their headers), the decoded session is always sent.
	MaxSendRate int64
}

// Environment variables a deployed agent reads: its token, and its
// certificate and key (PEM).
const (
	EnvToken = "PFTAP_AGENT_TOKEN"
	EnvCert  = "PFTAP_AGENT_CERT"
	EnvKey   = "PFTAP_AGENT_KEY"
)

// Port is the port a deployed agent listens on, on the node's 127.0.0.1.
const Port = 10299

// Agent serves trace sessions.
type Agent struct {
	opts Options
	tls  *tls.Config
	// port is the agent's own listening port, never tapped.
	port int
	// mu guards active and idleSince.
	mu        sync.Mutex
	active    int
	idleSince time.Time
	// used is set once a session presented the token (Options.Once);
	// onceDone is closed when that session ends.
	used     bool
	onceDone chan struct{}
	// Fingerprint is the SHA-256 of the agent's certificate, hex.
	Fingerprint string
}

// New makes an agent with a fresh self-signed certificate.
func New(o Options) (*Agent, error) {
	if o.Token == "" {
		return nil, errors.New("agent: a token is required")
	}
	if len(o.Token) < MinTokenLen {
		return nil, fmt.Errorf("agent: the token is %d characters long; at least %d are needed", len(o.Token), MinTokenLen)
	}
	if o.KubeletPort == 0 {
		o.KubeletPort = 10250
	}
	var cert tls.Certificate
	if o.Certificate != nil {
		cert = *o.Certificate
	} else {
		var err error
		if cert, err = NewCertificate(); err != nil {
			return nil, err
		}
	}
	return &Agent{opts: o, tls: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}, Fingerprint: pki.Fingerprint(cert),
		onceDone: make(chan struct{})}, nil
}

// NewCertificate makes a self-signed certificate for an agent.
func NewCertificate() (tls.Certificate, error) {
	ca, err := pki.New("pftap agent")
	if err != nil {
		return tls.Certificate{}, err
	}
	return ca.Issue("pftap-agent", []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"}, false)
}

// Serve accepts trace sessions on l until it is closed, or, with
// ExitWhenIdle, until no session ran for that long (ErrIdle).
func (a *Agent) Serve(l net.Listener) error {
	if ta, ok := l.Addr().(*net.TCPAddr); ok {
		a.port = ta.Port
	}
	a.mu.Lock()
	a.idleSince = time.Now()
	a.mu.Unlock()
	idle := make(chan struct{})
	if a.opts.Once {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			select {
			case <-a.onceDone:
				l.Close()
			case <-stop:
			}
		}()
	}
	if a.opts.ExitWhenIdle > 0 {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			t := time.NewTicker(max(a.opts.ExitWhenIdle/10, 10*time.Millisecond))
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				a.mu.Lock()
				gone := a.active == 0 && time.Since(a.idleSince) >= a.opts.ExitWhenIdle
				a.mu.Unlock()
				if gone {
					close(idle)
					l.Close()
					return
				}
			}
		}()
	}
	for {
		c, err := l.Accept()
		if err != nil {
			select {
			case <-idle:
				return ErrIdle
			case <-a.onceDone:
				return ErrSessionEnded
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go a.session(tls.Server(c, a.tls))
	}
}

func (a *Agent) begin() {
	a.mu.Lock()
	a.active++
	a.mu.Unlock()
}

func (a *Agent) end() {
	a.mu.Lock()
	a.active--
	a.idleSince = time.Now()
	a.mu.Unlock()
}

func (a *Agent) logf(format string, args ...any) {
	if a.opts.Log != nil {
		fmt.Fprintf(a.opts.Log, "pftap agent: "+format+"\n", args...)
	}
}

func (a *Agent) session(c net.Conn) {
	a.begin()
	defer a.end()
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(c, 64<<10)
	line, err := br.ReadSlice('\n')
	if err != nil {
		a.logf("%s: no request: %v", c.RemoteAddr(), err)
		return
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return
	}
	enc := json.NewEncoder(c)
	refuse := func(msg string) {
		a.logf("%s: %s", c.RemoteAddr(), msg)
		enc.Encode(Hello{Version: ProtocolVersion, Error: msg})
	}
	if subtle.ConstantTimeCompare([]byte(req.Token), []byte(a.opts.Token)) != 1 {
		refuse("wrong token")
		return
	}
	if req.Version != ProtocolVersion {
		refuse(VersionMismatch(ProtocolVersion, req.Version, "trace"))
		return
	}
	if req.NodeWide && !a.opts.AllowNodeWide {
		refuse("this agent sends only trace's own session: it was not started with --allow-node-wide")
		return
	}
	if a.opts.Once {
		a.mu.Lock()
		used := a.used
		a.used = true
		a.mu.Unlock()
		if used {
			refuse("this agent's token was used already: it serves one trace")
			return
		}
		defer close(a.onceDone)
	}
	own, err := a.probe(c, br)
	if err != nil {
		refuse("finding the agent's own connections: " + err.Error())
		return
	}
	srcs, legs, podNetns, err := a.open(req, own)
	if err != nil {
		refuse(err.Error())
		return
	}
	defer func() {
		for _, s := range srcs {
			s.Close()
		}
	}()
	host, _ := os.Hostname()
	names := make([]string, len(legs))
	ids := make([]leg.ID, len(legs))
	about := make([]string, len(legs))
	for i, l := range legs {
		names[i], ids[i], about[i] = l.Name, l.ID, l.Description
	}
	var listening []string
	if ls, err := capture.Listeners(podNetns); err == nil {
		for _, l := range ls {
			listening = append(listening, l.String())
		}
	}
	var excluded []string
	for _, t := range own {
		excluded = append(excluded, t.String())
	}
	if err := enc.Encode(Hello{Version: ProtocolVersion, Node: host, Legs: names, LegIDs: ids, LegsAbout: about, PodListeners: listening, Excluded: excluded, NodeWide: req.NodeWide}); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	view := "only its own session"
	if req.NodeWide {
		view = "everything on the node's legs (node-wide)"
	}
	a.logf("%s: tapping pod %s for trace, %s: %s", c.RemoteAddr(), req.PodIP, view, strings.Join(names, ", "))
	if len(excluded) > 0 {
		a.logf("%s: left out of every leg, as they carry this session: %s", c.RemoteAddr(), strings.Join(excluded, ", "))
	}
	s := newSession(a, c, br, req)
	s.run(srcs, legs)
	a.logf("%s: session ended (%d bytes sent)", c.RemoteAddr(), s.out.sent.Load())
}

// probe finds the connections that carry this session (see self.go).
func (a *Agent) probe(c net.Conn, br *bufio.Reader) ([]Tuple, error) {
	if a.opts.NoProbe {
		return nil, nil
	}
	ports, err := a.streamingPorts()
	if err != nil {
		return nil, err
	}
	watch := map[int]bool{a.opts.KubeletPort: true}
	for _, p := range ports {
		watch[p] = true
	}
	snap, err := snapshot(a.opts.Netns, watch)
	if err != nil {
		return nil, fmt.Errorf("reading the node's sockets: %v", err)
	}
	snaps := []map[sock]counters{snap}
	enc := json.NewEncoder(c)
	zeros := make([]byte, 32<<10)
	for _, n := range probeSizes {
		if err := enc.Encode(Hello{Probe: n}); err != nil {
			return nil, err
		}
		for left := n; left > 0; {
			k := min(left, len(zeros))
			if _, err := c.Write(zeros[:k]); err != nil {
				return nil, err
			}
			left -= k
		}
		line, err := br.ReadSlice('\n')
		if err != nil {
			return nil, fmt.Errorf("no acknowledgement from trace: %v", err)
		}
		var ack Request
		if err := json.Unmarshal(line, &ack); err != nil || ack.Probed != n {
			return nil, fmt.Errorf("trace acknowledged %q, not the probe of %d bytes", bytes.TrimSpace(line), n)
		}
		if snap, err = snapshot(a.opts.Netns, watch); err != nil {
			return nil, fmt.Errorf("reading the node's sockets: %v", err)
		}
		snaps = append(snaps, snap)
	}
	return ownConnections(snaps, probeSizes), nil
}

// streamingPorts are the configured streaming ports, or those found.
func (a *Agent) streamingPorts() ([]int, error) {
	if len(a.opts.StreamingPorts) > 0 {
		return a.opts.StreamingPorts, nil
	}
	return streamingPorts(a.opts.Netns, a.opts.KubeletPort, a.port)
}

// open starts the captures of a session, leaving out the agent's own
// port and the connections own.
func (a *Agent) open(req Request, own []Tuple) ([]*capture.Source, []capture.Leg, string, error) {
	ip, err := netip.ParseAddr(req.PodIP)
	if err != nil {
		return nil, nil, "", fmt.Errorf("pod IP %q: %v", req.PodIP, err)
	}
	pod, err := capture.FindNetnsByIP(ip)
	if err != nil {
		return nil, nil, "", fmt.Errorf("the pod is not on this node: %v", err)
	}
	ports, err := a.streamingPorts()
	if err != nil {
		return nil, nil, "", err
	}
	type want struct {
		leg          capture.Leg
		netns, iface string
		filter       string
	}
	ws := []want{{capture.Leg{Leg: leg.Leg{ID: leg.L2Wire, Name: "L2 on the wire (TLS)", Description: fmt.Sprintf("the apiserver to the kubelet's :%d, TLS records, tapped on the node", a.opts.KubeletPort)}},
		a.opts.Netns, "any", fmt.Sprintf("tcp port %d", a.opts.KubeletPort)}}
	if len(ports) > 0 {
		var f []string
		for _, p := range ports {
			f = append(f, fmt.Sprintf("tcp port %d", p))
		}
		ws = append(ws, want{capture.Leg{Leg: leg.Leg{ID: leg.L3, Name: "L3 kubelet→runtime", Description: fmt.Sprintf("the kubelet to the runtime's streaming server on the node's lo (ports %v)", ports)}},
			a.opts.Netns, "lo", strings.Join(f, " or ")})
	}
	ws = append(ws,
		want{capture.Leg{Leg: leg.Leg{ID: leg.L4, Name: "L4 runtime→app", Description: "the pod's lo, in " + pod.How}}, pod.Ref, "lo", "tcp"},
		want{capture.Leg{Leg: leg.Leg{ID: leg.Witness, Name: "witness pod eth0", Description: "the pod's " + pod.Interface + ": port-forward never crosses it"}}, pod.Ref, pod.Interface, "tcp"})
	var srcs []*capture.Source
	var legs []capture.Leg
	for _, w := range ws {
		// The witness carries none of the session: a small ring will do
		// (the pod's other traffic is counted, not decoded, once it is
		// known not to be the session's).
		ring := 0
		if w.leg.ID == leg.Witness {
			ring = 8
		}
		s, err := capture.Open(capture.Options{Netns: w.netns, Interface: w.iface, Filter: withExclusions(w.filter, own, a.port), BufferMiB: ring})
		if err != nil {
			for _, s := range srcs {
				s.Close()
			}
			return nil, nil, "", fmt.Errorf("%s: %v", w.leg.Name, err)
		}
		srcs = append(srcs, s)
		legs = append(legs, w.leg)
	}
	return srcs, legs, pod.Ref, nil
}

// streamingPorts lists the TCP ports listening on 127.0.0.1 in the node's
// namespace, but the kubelet's, kube-proxy's and the agent's own (self):
// where a CRI runtime's streaming server listens.
func streamingPorts(netns string, kubelet, self int) ([]int, error) {
	ls, err := capture.Listeners(netns)
	if err != nil {
		return nil, fmt.Errorf("reading the node's sockets: %v", err)
	}
	skip := map[int]bool{kubelet: true, self: true, Port: true, 10248: true, 10249: true, 10256: true, 10257: true, 10259: true}
	var ports []int
	for _, l := range ls {
		if l.Addr() == netip.AddrFrom4([4]byte{127, 0, 0, 1}) && !skip[int(l.Port())] {
			ports = append(ports, int(l.Port()))
		}
	}
	return ports, nil
}
