package trace

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pftap/pftap/agent"
	"github.com/pftap/pftap/leg"
	"github.com/pftap/pftap/session"

	"k8s.io/client-go/rest"

	"github.com/pftap/pftap/capture"
	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/internal/pfclient"
	"github.com/pftap/pftap/timeline"
)

// l1Name is the name of the leg trace taps itself.
const l1Name = "L1 client→apiserver"

// proxyName is the name of the leg to an HTTPS proxy on the way.
const proxyName = "proxy client→proxy"

// Options of a trace.
type Options struct {
	Config  *rest.Config
	Target  *Target
	Address string
	SPDY    bool
	// Event receives every decoded event as it happens (a failure with
	// its Diagnosis, sharpened by what the agent saw in the pod), from
	// one goroutine.
	Event func(*decode.Event)
	// Verbosity of the decoder (as pftap decode -v).
	Verbosity int
	// Write is a pcapng file to record the legs in ("": none).
	Write string
	// Agent is the address of a pftap agent on the pod's node ("": none),
	// AgentToken its token, AgentFingerprint the SHA-256 of its
	// certificate (hex; "": the one remembered for Agent in KnownAgents;
	// with neither, trace refuses to send the agent anything).
	Agent, AgentToken, AgentFingerprint string
	// KnownAgents is the file of remembered agents ("": none).
	KnownAgents string
	// NodeWide asks the agent for every connection on the node's legs,
	// not only this session's (an agent must be started allowing it).
	NodeWide bool
	// Log receives progress lines (a remembered agent).
	Log io.Writer
}

// Result is what a trace ends with.
type Result struct {
	// Wrote is the recording, when one was asked for.
	Wrote session.Recording
	// Decoded is what the decoding left, for timeline.Analysis: the
	// agent's legs, timed on its clock, are Remote, and its TLS leg is
	// placed by Records.
	Decoded timeline.Decoded
	// Legs are the legs' names, this machine's first, and LegIDs their
	// places in the chain.
	Legs   []string
	LegIDs []leg.ID
	// Lost explains why the port-forward ended on its own (nil when it
	// was stopped).
	Lost error
	// ClientLog is what pftap's client (client-go's port-forwarder)
	// reported while it forwarded, in order: kubectl's "Unhandled Error"
	// lines, such as a local connection reset.
	ClientLog []ClientLine
	// ClientLogMore is how many lines came after the first MaxClientLog.
	ClientLogMore int
	// Drops are the kernel's drops per leg (Legs' order): the agent's
	// captures'.
	Drops []uint64
	// AgentLegs are the agent's counters per leg (its legs' order: Legs
	// from the second on), what it left out among them; AgentSent the
	// bytes it sent trace. Zero without an agent.
	AgentLegs []agent.LegStatus
	AgentSent int64
}

// ClientLine is one error the port-forward client reported, when it did.
type ClientLine struct {
	Time time.Time
	Line string
}

// Session is a running trace: pftap's own port-forward, tapped.
type Session struct {
	fwd   *pfclient.Forwarder
	opts  Options
	pipe  *session.Pipeline
	done  chan struct{} // closed when the events have ended
	dec   session.Decoded
	wrote session.Recording
	last  string // the last diagnosis
	mu    sync.Mutex
	werr  error
	close sync.Once
	// legs are the legs' names, this machine's first; tapped the same
	// legs with where each was tapped.
	legs   []string
	tapped []capture.Leg
	// remote are the agent's legs; agent its connection.
	remote    map[leg.ID]bool
	agent     *agentLink
	agentDone chan struct{}
	agentErr  error
	// The agent's counters, as last reported, and its legs' finals.
	agentStatus agent.Status
	agentFinal  map[int]agent.LegStatus
	// podListeners are what listened in the pod when the agent began.
	podListeners  []string
	clientLog     []ClientLine // under mu, the first MaxClientLog
	clientLogMore int          // and how many more came
}

// MaxClientLog is how many of the client's error lines a trace keeps (a
// long trace may see thousands of local connections aborted); the rest
// are counted in Result.ClientLogMore.
const MaxClientLog = 200

// agentLateness is how far behind the taps the events of a trace with an
// agent are released: the node's frames cross the network first.
const agentLateness = 250 * time.Millisecond

// Start resolves nothing (Target is resolved), starts the port-forward
// with L1 tapped below TLS and decodes as the frames come.
func Start(ctx context.Context, o Options) (*Session, error) {
	s := &Session{opts: o, done: make(chan struct{}), legs: []string{l1Name}, remote: map[leg.ID]bool{}}
	legs := []capture.Leg{{Leg: leg.Leg{ID: leg.L1, Name: l1Name, Description: "plaintext below TLS, recorded inside pftap's port-forward client" + capture.BelowTLSNote, At: leg.ClientEnd}}}
	lateness := session.DefaultLateness
	if o.Agent != "" {
		link, err := dialAgent(ctx, o, o.Target.Pod.Status.PodIP)
		if err != nil {
			return nil, err
		}
		s.agent = link
		s.agentFinal = map[int]agent.LegStatus{}
		hello := &link.hello
		s.podListeners = hello.PodListeners
		if len(hello.Excluded) > 0 && o.Log != nil {
			fmt.Fprintf(o.Log, "pftap trace: the agent left out of every leg the connections that carry its stream to trace: %s\n", strings.Join(hello.Excluded, ", "))
		}
		for i, name := range hello.Legs {
			id := leg.FromLegacyName(name) // an agent from before leg IDs
			if i < len(hello.LegIDs) {
				id = hello.LegIDs[i]
			}
			about := "tapped by pftap agent on " + hello.Node
			if i < len(hello.LegsAbout) && hello.LegsAbout[i] != "" {
				about = hello.LegsAbout[i] + " (pftap agent on " + hello.Node + ")"
			}
			legs = append(legs, capture.Leg{Leg: leg.Leg{ID: id, Name: name, Description: about}})
			s.legs = append(s.legs, name)
			s.remote[id] = true
		}
		lateness = agentLateness
	}
	// An HTTPS proxy on the way (the kubeconfig's proxy-url, HTTPS_PROXY):
	// its leg below its TLS shows the CONNECT.
	pfOpts := pfclient.Options{Config: o.Config, Namespace: o.Target.Namespace, Pod: o.Target.Pod.Name, Address: o.Address, SPDY: o.SPDY}
	proxyLeg := -1
	if pu, err := pfclient.ProxyFor(pfOpts); err == nil && pu != nil && pu.Scheme == "https" {
		proxyLeg = len(legs)
		legs = append(legs, capture.Leg{Leg: leg.Leg{ID: leg.Proxy, Name: proxyName, Description: "pftap's connection to the HTTPS proxy " + pu.Host + ", plaintext below the proxy's TLS (the CONNECT, then L1's TLS records)", At: leg.ClientEnd}})
		s.legs = append(s.legs, proxyName)
	}
	// The same pipeline as pftap lab's: each leg decoded where its frames
	// arrive, events in time order; with -w the same recorder, written as
	// the session goes, each packet with its summaries, credentials
	// redacted.
	pipe, err := session.NewPipeline(session.PipelineOptions{Verbosity: o.Verbosity, Lateness: lateness, Write: o.Write})
	if err != nil {
		s.closeAgent()
		return nil, err
	}
	s.pipe = pipe
	s.tapped = legs
	for i, l := range legs {
		switch {
		case i == 0 && s.agent != nil:
			// trace's own leg tells the agent what to look for.
			pipe.AddLegHooks(l, true, decode.LegHooks{SPDYBytes: s.agent.spdyBytes, Observe: s.agent.observe})
		case s.remote[l.ID]:
			pipe.AddRemoteLeg(l)
		default:
			pipe.AddLeg(l, i == 0)
		}
	}
	comment := fmt.Sprintf("pftap trace session, %s, pod %s/%s", time.Now().UTC().Format(time.RFC3339), o.Target.Namespace, o.Target.Pod.Name)
	if err := pipe.StartRecording(comment); err != nil {
		pipe.CloseRecording("", nil)
		s.closeAgent()
		return nil, err
	}
	go func() {
		defer close(s.done)
		s.dec = pipe.Events(s.event)
	}()
	if s.agent != nil {
		s.agentDone = make(chan struct{})
		go s.readAgent()
		// The agent's clock first: trace tells it of its upgrades on it.
		for range 3 {
			s.agent.ping()
		}
		select {
		case <-s.agent.clockReady:
		case <-s.agentDone:
		case <-time.After(10 * time.Second):
		case <-ctx.Done():
		}
		if !s.agent.clockSet() {
			err := fmt.Errorf("pftap agent at %s: it did not answer trace's clock probe", o.Agent)
			if s.agentErr != nil {
				err = s.agentErr
			}
			s.finishAgent()
			s.finish()
			return nil, err
		}
	}
	var ports []string
	for _, p := range o.Target.Ports {
		ports = append(ports, fmt.Sprintf("%d:%d", p.Local, p.Remote))
	}
	pfOpts.Ports = ports
	pfOpts.OnError = func(e pfclient.ClientError) {
		s.mu.Lock()
		if len(s.clientLog) < MaxClientLog {
			s.clientLog = append(s.clientLog, ClientLine{e.Time, e.Line})
		} else {
			s.clientLogMore++
		}
		s.mu.Unlock()
	}
	pfOpts.Wrap = func(c net.Conn) net.Conn {
		return capture.NewTapParts(c, func(_ time.Time, head, payload []byte) { s.pipe.Tapped(0, head, payload) }, capture.BelowTLS)
	}
	if proxyLeg >= 0 {
		pfOpts.WrapProxy = func(c net.Conn) net.Conn {
			return capture.NewTapParts(c, func(_ time.Time, head, payload []byte) { s.pipe.Tapped(proxyLeg, head, payload) }, capture.BelowTLS)
		}
	}
	fwd, err := pfclient.Start(ctx, pfOpts)
	if err != nil {
		if s.agent != nil && ctx.Err() == nil {
			// The node's side of the refusal is still on its way: the
			// agent's events come late, then their connections close.
			time.Sleep(agentLateness)
			s.pipe.Drain(session.ConnsClosed, session.DrainConns)
		}
		s.finishAgent()
		s.finish()
		// The upgrade's refusal was decoded on L1: say what it means.
		s.mu.Lock()
		why := s.last
		s.mu.Unlock()
		if why != "" {
			err = fmt.Errorf("%s (%w)", why, err)
		}
		return nil, err
	}
	s.fwd = fwd
	return s, nil
}

// Legs are the tapped legs (L1 first, then the agent's), each with where
// it was tapped.
func (s *Session) Legs() []capture.Leg { return s.tapped }

// Ports are the forwarded ports.
func (s *Session) Ports() []PortPair {
	var out []PortPair
	for i, p := range s.fwd.Ports {
		pp := PortPair{Local: int(p.Local), Remote: int(p.Remote)}
		if i < len(s.opts.Target.Ports) {
			pp.Spec = s.opts.Target.Ports[i].Spec
		}
		out = append(out, pp)
	}
	return out
}

// Progress is how far the trace has got: each leg's ID (this machine's
// first), the bytes it has taken so far, and the kernel's drops of the
// agent's captures (-1 without an agent: nothing is captured by a packet
// socket).
func (s *Session) Progress() (legs []string, bytes []int64, drops int64) {
	for _, l := range s.tapped {
		legs = append(legs, string(l.ID))
	}
	drops = -1
	if s.agent != nil {
		drops = 0
		for _, d := range s.pipe.Drops() {
			drops += int64(d)
		}
	}
	return legs, s.pipe.Moved(), drops
}

// Done is closed when the port-forward ends by itself.
func (s *Session) Done() <-chan struct{} { return s.fwd.Done() }

// Stop ends the port-forward (if it still runs), the agent's stream and
// the decoding, and returns what the trace saw.
func (s *Session) Stop() Result {
	endedItself := false
	select {
	case <-s.fwd.Done():
		endedItself = true
	default:
	}
	s.fwd.Stop()
	if s.agent != nil {
		// The drain, as pftap lab's: the node's last packets (the
		// teardown) are still on their way.
		s.pipe.Drain(session.RequestsEnded, session.DrainRequests)
		s.pipe.Drain(session.ConnsClosed, session.DrainConns)
		s.finishAgent()
	}
	s.finish()
	// The cause is known once every frame is decoded: the error stream's
	// text may still have been on its way when client-go gave up.
	var lost error
	if endedItself {
		lost = s.lostConnection()
	}
	if err := s.writeErr(); err != nil && lost == nil {
		lost = err
	}
	s.mu.Lock()
	clientLog, more := slices.Clone(s.clientLog), s.clientLogMore
	s.mu.Unlock()
	r := Result{Decoded: timeline.Decoded{Summary: s.dec.Summary, Correlator: s.dec.Correlator, Legs: len(s.legs)}, Legs: s.legs, Lost: lost,
		Wrote: s.wrote, ClientLog: clientLog, ClientLogMore: more, Drops: s.pipe.Drops()}
	for _, l := range s.tapped {
		r.LegIDs = append(r.LegIDs, l.ID)
	}
	if s.agent != nil {
		s.mu.Lock()
		st := s.agentStatus
		for i := range st.Legs {
			if f, ok := s.agentFinal[i]; ok {
				st.Legs[i] = f
			}
		}
		s.mu.Unlock()
		r.AgentLegs, r.AgentSent = st.Legs, st.Sent
		// The node's legs on its clock; its TLS leg placed by its
		// records' times.
		r.Decoded.Remote = func(id leg.ID) bool { return s.remote[id] }
		r.Decoded.Records = s.dec.Records
		if s.agentErr != nil && r.Lost == nil {
			r.Lost = s.agentErr
		}
	}
	return r
}

func (s *Session) closeAgent() {
	if s.agent != nil {
		s.agent.Close()
	}
}

// agentFinish bounds the wait for the agent's finals once trace is done:
// so long without a message from it (what it still sends, frames for -w
// over a slow link, keeps it waiting).
const agentFinish = 10 * time.Second

// finishAgent tells the agent trace is done, waits for its finals (what
// it decoded last, each leg's totals), and closes the connection.
func (s *Session) finishAgent() {
	if s.agent == nil {
		return
	}
	s.agent.end()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-s.agent.done:
			break wait
		case <-s.agentDone:
			break wait
		case <-tick.C:
			if time.Since(s.agent.heard()) > agentFinish {
				s.mu.Lock()
				if s.agentErr == nil {
					s.agentErr = fmt.Errorf("pftap agent at %s: its last results did not come (nothing heard from it for %s)", s.agent.addr, agentFinish)
				}
				s.mu.Unlock()
				break wait
			}
		}
	}
	s.closeAgent()
	<-s.agentDone
}

// lostConnection explains why the port-forward ended by itself: what
// kubectl reports as "lost connection to pod".
func (s *Session) lostConnection() error {
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	cause := ""
	switch {
	case last != "":
		cause = last
	case s.fwd.RelayErr() != nil:
		cause = "the connection to the apiserver failed: " + s.fwd.RelayErr().Error()
	case s.fwd.Err() != nil && !strings.Contains(s.fwd.Err().Error(), "lost connection to pod"):
		cause = s.fwd.Err().Error()
	default:
		cause = "the apiserver closed the port-forward connection (the apiserver or kubelet restarted, or a proxy or load balancer timed it out)"
	}
	return fmt.Errorf("lost connection to pod: %s", cause)
}

func (s *Session) finish() {
	s.close.Do(func() {
		s.pipe.End()
		<-s.done
		rec, err := s.pipe.CloseRecording("", nil)
		if err != nil {
			s.setWriteErr(err)
		}
		s.wrote = rec
	})
}

func (s *Session) setWriteErr(err error) {
	s.mu.Lock()
	if s.werr == nil {
		s.werr = err
	}
	s.mu.Unlock()
}

func (s *Session) writeErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.werr
}

// event reports an event, its diagnosis sharpened by what the agent saw
// in the pod, and keeps the last diagnosis.
func (s *Session) event(e *decode.Event) {
	if e.Diagnosis != "" {
		// The agent saw what listened in the pod: a refused connection
		// can be told apart.
		if e.Kind == decode.KindStreamError && s.podListeners != nil {
			e.Diagnosis = decode.RefineRefused(e.Diagnosis, e, s.podListeners)
		}
		s.mu.Lock()
		s.last = e.Diagnosis
		s.mu.Unlock()
	}
	if s.opts.Event != nil {
		s.opts.Event(e)
	}
}

// LegRows are the rows of the legs table, in the order of the chain:
// each leg's totals in sum and its drops, and on the agent's legs what
// the agent left out of them.
func (r Result) LegRows(sum decode.Summary) []timeline.LegRow {
	rows := timeline.LegRows(sum, r.Legs, r.LegIDs, r.Drops)
	for i := range rows {
		for k, name := range r.Legs[1:] {
			if name == rows[i].Name && k < len(r.AgentLegs) {
				a := r.AgentLegs[k]
				rows[i].Agent = &timeline.AgentCounts{LeftOutConns: a.LeftOutConns, LeftOutPackets: a.LeftOutPackets, Ambiguous: a.Ambiguous, Shortened: a.Shortened}
			}
		}
	}
	return rows
}
