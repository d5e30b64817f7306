// Package agent is `pftap agent`, the node side of `pftap trace`: on the
// node that hosts the pod it taps the legs only the node can see (the
// apiserver's TLS connection to the kubelet, the kubelet's plaintext to the
// runtime's streaming server on the node's lo, the pod's lo, and the pod's
// eth0 as the witness) and streams them to trace as pcapng, one interface
// per leg, over a TLS connection that trace opens and authenticates with a
// token.
//
// The protocol: trace sends one JSON line (Request), the agent answers
// one JSON line (Hello) and then a pcapng stream until trace closes the
// connection.
package agent

import (
	"bufio"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gopacket/gopacket"

	"github.com/pftap/pftap/capture"
	"github.com/pftap/pftap/internal/nsenter"
	"github.com/pftap/pftap/internal/pki"
)

// Request is what trace asks for.
type Request struct {
	Token string `json:"token"`
	// PodIP is the pod's IP: the agent finds its network namespace.
	PodIP string `json:"pod_ip"`
}

// Hello is the agent's answer, before the pcapng stream.
type Hello struct {
	Node  string   `json:"node,omitempty"`
	Legs  []string `json:"legs,omitempty"`
	Error string   `json:"error,omitempty"`
	// PodListeners are the TCP addresses listening in the pod's network
	// namespace when the session began ("127.0.0.1:80", "10.1.2.3:8080",
	// "[::]:443"): what trace needs to tell "nothing listens" from "the
	// app listens on the pod's IP only".
	PodListeners []string `json:"pod_listeners,omitempty"`
}

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
	// Fingerprint is the SHA-256 of the agent's certificate, hex.
	Fingerprint string
}

// New makes an agent with a fresh self-signed certificate.
func New(o Options) (*Agent, error) {
	if o.Token == "" {
		return nil, errors.New("agent: a token is required")
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
	return &Agent{opts: o, tls: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}, Fingerprint: pki.Fingerprint(cert)}, nil
}

// NewCertificate makes a self-signed certificate for an agent.
func NewCertificate() (tls.Certificate, error) {
	ca, err := pki.New("pftap agent")
	if err != nil {
		return tls.Certificate{}, err
	}
	return ca.Issue("pftap-agent", []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"}, false)
}

// Serve accepts trace sessions on l until it is closed.
func (a *Agent) Serve(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go a.session(tls.Server(c, a.tls))
	}
}

func (a *Agent) logf(format string, args ...any) {
	if a.opts.Log != nil {
		fmt.Fprintf(a.opts.Log, "pftap agent: "+format+"\n", args...)
	}
}

func (a *Agent) session(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(c, 4096)
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
	if subtle.ConstantTimeCompare([]byte(req.Token), []byte(a.opts.Token)) != 1 {
		a.logf("%s: wrong token", c.RemoteAddr())
		enc.Encode(Hello{Error: "wrong token"})
		return
	}
	srcs, legs, podNetns, err := a.open(req)
	if err != nil {
		a.logf("%s: %v", c.RemoteAddr(), err)
		enc.Encode(Hello{Error: err.Error()})
		return
	}
	defer func() {
		for _, s := range srcs {
			s.Close()
		}
	}()
	host, _ := os.Hostname()
	names := make([]string, len(legs))
	for i, l := range legs {
		names[i] = l.Name
	}
	var listening []string
	if ls, err := Listeners(podNetns); err == nil {
		for _, l := range ls {
			listening = append(listening, l.String())
		}
	}
	if err := enc.Encode(Hello{Node: host, Legs: names, PodListeners: listening}); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	a.logf("%s: tapping pod %s: %s", c.RemoteAddr(), req.PodIP, strings.Join(names, ", "))
	w := capture.NewWriter(c, "pftap agent on "+host)
	for _, l := range legs {
		if _, err := w.AddLeg(l); err != nil {
			return
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var once sync.Once
	end := func() { once.Do(func() { close(stop) }) }
	for i, s := range srcs {
		wg.Add(1)
		go func(i int, s *capture.Source) {
			defer wg.Done()
			capture.Drain(s, stop, func(data []byte, ci gopacket.CaptureInfo) {
				if err := w.WritePacket(i, ci.Timestamp.Add(a.opts.ClockOffset), data, ci.Length, ""); err != nil {
					end()
				}
			})
		}(i, s)
	}
	// trace ends the session by closing its side.
	go func() {
		io.Copy(io.Discard, br)
		end()
	}()
	<-stop
	wg.Wait()
	a.logf("%s: session ended", c.RemoteAddr())
}

// open starts the captures of a session.
func (a *Agent) open(req Request) ([]*capture.Source, []capture.Leg, string, error) {
	ip, err := netip.ParseAddr(req.PodIP)
	if err != nil {
		return nil, nil, "", fmt.Errorf("pod IP %q: %v", req.PodIP, err)
	}
	pod, err := capture.FindNetnsByIP(ip)
	if err != nil {
		return nil, nil, "", fmt.Errorf("the pod is not on this node: %v", err)
	}
	ports := a.opts.StreamingPorts
	if len(ports) == 0 {
		if ports, err = streamingPorts(a.opts.Netns, a.opts.KubeletPort); err != nil {
			return nil, nil, "", err
		}
	}
	type want struct {
		leg          capture.Leg
		netns, iface string
		filter       string
	}
	ws := []want{{capture.Leg{Name: "L2 on the wire (TLS)", Description: fmt.Sprintf("the apiserver to the kubelet's :%d, TLS records, tapped on the node", a.opts.KubeletPort)},
		a.opts.Netns, "any", fmt.Sprintf("tcp port %d", a.opts.KubeletPort)}}
	if len(ports) > 0 {
		var f []string
		for _, p := range ports {
			f = append(f, fmt.Sprintf("tcp port %d", p))
		}
		ws = append(ws, want{capture.Leg{Name: "L3 kubelet→runtime", Description: fmt.Sprintf("the kubelet to the runtime's streaming server on the node's lo (ports %v)", ports)},
			a.opts.Netns, "lo", strings.Join(f, " or ")})
	}
	ws = append(ws,
		want{capture.Leg{Name: "L4 runtime→app", Description: "the pod's lo, in " + pod.How}, pod.Ref, "lo", "tcp"},
		want{capture.Leg{Name: "witness pod eth0", Description: "the pod's " + pod.Interface + ": port-forward never crosses it"}, pod.Ref, pod.Interface, "tcp"})
	var srcs []*capture.Source
	var legs []capture.Leg
	for _, w := range ws {
		s, err := capture.Open(capture.Options{Netns: w.netns, Interface: w.iface, Filter: w.filter})
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

// Listeners lists the TCP sockets listening in a network namespace ("":
// the agent's own), IPv4 and IPv6.
func Listeners(netns string) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	read := func() error {
		for _, f := range []string{"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"} {
			data, err := os.ReadFile(f)
			if err != nil {
				if f == "/proc/thread-self/net/tcp6" {
					continue // no IPv6
				}
				return err
			}
			out = append(out, parseListeners(string(data))...)
		}
		return nil
	}
	var err error
	if netns == "" {
		err = read()
	} else {
		err = nsenter.Do(netns, read)
	}
	return out, err
}

// parseListeners reads /proc/net/tcp{,6}: the LISTEN sockets' local
// addresses.
func parseListeners(data string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, line := range strings.Split(data, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "0A" { // LISTEN
			continue
		}
		addr, port, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(port, 16, 16)
		if err != nil {
			continue
		}
		raw, err := hex.DecodeString(addr)
		if err != nil || (len(raw) != 4 && len(raw) != 16) {
			continue
		}
		// The kernel prints each 32-bit word in host (little-endian) order.
		for i := 0; i+4 <= len(raw); i += 4 {
			raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
		}
		ip, _ := netip.AddrFromSlice(raw)
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(p)))
	}
	return out
}

// streamingPorts lists the TCP ports listening on 127.0.0.1 in the node's
// namespace, but the kubelet's and kube-proxy's: where a CRI runtime's
// streaming server listens.
func streamingPorts(netns string, kubelet int) ([]int, error) {
	ls, err := Listeners(netns)
	if err != nil {
		return nil, fmt.Errorf("reading the node's sockets: %v", err)
	}
	skip := map[int]bool{kubelet: true, 10248: true, 10249: true, 10256: true, 10257: true, 10259: true}
	var ports []int
	for _, l := range ls {
		if l.Addr() == netip.AddrFrom4([4]byte{127, 0, 0, 1}) && !skip[int(l.Port())] {
			ports = append(ports, int(l.Port()))
		}
	}
	return ports, nil
}
