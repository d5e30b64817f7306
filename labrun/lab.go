package labrun

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gopacket/gopacket"

	"github.com/pftap/pftap/capture"
	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/internal/pfclient"
	"github.com/pftap/pftap/lab"
	"github.com/pftap/pftap/leg"
	"github.com/pftap/pftap/session"
)

// Taps say which of a lab session's taps are left out; the zero value is
// every tap, decoded, as users run it. The others measure what the taps
// cost.
type Taps uint8

const (
	// NoInProcess leaves out the in-process taps: the user's leg, and L1
	// and L2 below TLS.
	NoInProcess Taps = 1 << iota
	// NoCaptures leaves out the packet captures (L2 on the wire, L3, L4,
	// the witness).
	NoCaptures
	// CountOnly counts the tapped frames and drops them: nothing is
	// decoded or recorded.
	CountOnly
	// NoTaps runs the same chain and requests with nothing tapped.
	NoTaps = NoInProcess | NoCaptures | CountOnly
)

// LabOptions are the inputs of a lab session.
type LabOptions struct {
	// Runtime and App are lab.Config's.
	Runtime, App string
	Client       session.Client
	// SPDY makes the client speak SPDY/3.1 rather than WebSocket
	// (kubectl: by the lab refusing its WebSocket upgrade); NoWebSocket
	// asks for an apiserver from before 1.31.
	SPDY, NoWebSocket bool
	// Kubernetes, Kubelet, KubeletGateOff and StaleDeclaredFeatures are
	// lab.Config's: the era of the chain.
	Kubernetes, Kubelet   lab.Version
	KubeletGateOff        bool
	StaleDeclaredFeatures bool
	Requests              []session.Request
	// Concurrency and HeaderTimeout are SendOptions'.
	Concurrency   int
	HeaderTimeout time.Duration
	// RemotePort is the pod port to forward to; 0: the app's.
	RemotePort int
	// Write is a pcapng file to record the session to, as it goes.
	Write     string
	Verbosity int
	Taps      Taps
	// Fault makes the lab fail in one of the ways users report (Faults),
	// with the real mechanism: "" for none.
	Fault string
	// Kubectl is the kubectl binary to run for Client Kubectl (default:
	// kubectl.Path).
	Kubectl string
	// APIServer is lab.Config.APIServerBinary: a real kube-apiserver to
	// run as the control plane. kubectl's L1 is then seen on the wire
	// only (TLS records): the lab no longer owns the server end.
	APIServer string
	// KubeletBinary is lab.Config.KubeletBinary: the real kubelet as the
	// node (with APIServer and the containerd runtime).
	KubeletBinary string
	// Containerd is lab.Config.ContainerdBinary.
	Containerd string
}

// LabResult is what a lab session ends with besides its events.
type LabResult struct {
	// Description is the session's, with the app's log.
	Description session.Description
	Results     []session.RequestResult
	// Drops are the kernel's drops per leg.
	Drops []uint64
}

// A Lab is a lab session: a lab built and tapped on every leg, pftap's or
// kubectl's port-forward through it, and the requests sent through that.
//
//	s, err := labrun.StartLab(ctx, opts)
//	go func() { decoded = s.Events(render) }()
//	res, err := s.Run()
//	// wait for Events
//	rec, err := s.Close(nil)
type Lab struct {
	o      LabOptions
	ctx    context.Context
	pipe   *session.Pipeline
	lab    *lab.Lab
	desc   session.Description
	remote int
	// routedBefore is the real apiserver's routing count before the
	// session.
	routedBefore session.Routed
	// user and l1 are the legs of the in-process taps the client makes.
	user, l1     int
	stopCaptures func()
	// pollDrops reads the captures' drops so far (the kernel's counters
	// reset when read: they are summed).
	pollDrops func() uint64
	result    *LabResult
	closeOnce sync.Once
	ran       bool
}

// StartLab builds the lab, opens its taps and starts the recording: the
// session is ready to Run. ctx ends the lab and what runs in it.
func StartLab(ctx context.Context, o LabOptions) (_ *Lab, err error) {
	session.QuietUpstream()
	if o.Client == "" {
		o.Client = session.Pftap
	}
	inprocTaps, liveTaps := o.Taps&NoInProcess == 0, o.Taps&NoCaptures == 0
	write := o.Write
	if o.Taps&CountOnly != 0 {
		write = ""
	}
	pipe, err := session.NewPipeline(session.PipelineOptions{CountOnly: o.Taps&CountOnly != 0, Verbosity: o.Verbosity, Write: write})
	if err != nil {
		return nil, err
	}
	s := &Lab{o: o, ctx: ctx, pipe: pipe}
	defer func() {
		if err != nil {
			pipe.CloseRecording("", nil)
			if s.lab != nil {
				s.lab.Close()
			}
		}
	}()
	// The user's leg: the requests to the port-forward's local port,
	// tapped where they are made.
	s.user = pipe.AddLeg(capture.Leg{Leg: leg.Leg{ID: leg.User, Name: "user→" + string(o.Client), Description: "the requests to the port-forward's local port, recorded inside pftap's HTTP client", At: leg.ClientEnd}}, true)
	// L1 below TLS: inside pftap's own client, or (for kubectl) inside the
	// lab's apiserver; L2 below TLS inside the lab's kubelet.
	s.l1 = -1
	if o.Client == session.Pftap || o.APIServer == "" {
		s.l1 = pipe.AddLeg(capture.Leg{Leg: leg.Leg{ID: leg.L1, Name: "L1 client→apiserver", Description: "plaintext below TLS, recorded inside " +
			map[session.Client]string{session.Pftap: "pftap's port-forward client", session.Kubectl: "the lab's apiserver"}[o.Client] + capture.BelowTLSNote,
			At: map[session.Client]leg.End{session.Pftap: leg.ClientEnd, session.Kubectl: leg.ServerEnd}[o.Client]}}, true)
	}
	tapLegs := map[string]int{}
	if o.KubeletBinary == "" {
		// The real kubelet keeps its TLS to itself: L2 is then seen on
		// the wire only.
		tapLegs["L2"] = pipe.AddLeg(capture.Leg{Leg: leg.Leg{ID: leg.L2, Name: "L2 apiserver→kubelet", Description: "plaintext below TLS, recorded inside the lab's kubelet" + capture.BelowTLSNote, At: leg.ServerEnd}}, true)
	}
	if o.Fault == FaultHTTPSProxy {
		tapLegs["proxy"] = pipe.AddLeg(capture.Leg{Leg: leg.Leg{ID: leg.Proxy, Name: "proxy client→proxy",
			Description: "the client's connection to its HTTPS proxy, plaintext below the proxy's TLS (the CONNECT, then the apiserver's TLS records), recorded inside the lab's proxy", At: leg.ServerEnd}}, true)
	}
	if o.Client == session.Kubectl && s.l1 >= 0 {
		tapLegs["L1"] = s.l1
	}
	cfg := lab.Config{Runtime: o.Runtime, App: o.App, NoWebSocket: o.NoWebSocket, Kubernetes: o.Kubernetes, Kubelet: o.Kubelet,
		KubeletGateOff: o.KubeletGateOff, StaleDeclaredFeatures: o.StaleDeclaredFeatures,
		// kubectl has no switch for SPDY (1.38 removed the variable): it
		// gets SPDY when its WebSocket upgrade is refused.
		RefuseWebSocket: o.SPDY && o.Client == session.Kubectl, APIServerBinary: o.APIServer, KubeletBinary: o.KubeletBinary, ContainerdBinary: o.Containerd}
	if err := applyFault(o.Fault, &cfg); err != nil {
		return nil, err
	}
	if inprocTaps {
		cfg.TapConn = func(leg string, c net.Conn) net.Conn {
			idx, ok := tapLegs[leg]
			if !ok {
				return c
			}
			return capture.NewServerTapParts(c, func(_ time.Time, head, payload []byte) { pipe.Tapped(idx, head, payload) }, capture.BelowTLS)
		}
	}
	if s.lab, err = lab.Start(ctx, cfg); err != nil {
		return nil, err
	}
	// The port the forward reaches in the pod: the app's, or the one
	// asked for (where perhaps nothing listens: the refusal is on L4).
	s.remote = s.lab.Config().AppPort
	if o.RemotePort != 0 {
		s.remote = o.RemotePort
	} else if o.Fault == FaultRefused {
		s.remote = s.lab.Config().AppPort + 1 // where nothing listens
	}
	if s.stopCaptures, s.pollDrops, err = s.openCaptures(liveTaps); err != nil {
		return nil, err
	}
	if o.Kubectl == "" {
		o.Kubectl = kubectl.Path
		s.o.Kubectl = o.Kubectl
	}
	s.desc = describeLab(s.lab, o.Client, o.SPDY, o.Kubectl)
	s.routedBefore = s.readRouted(ctx)
	s.desc.Facts.Fault = o.Fault
	comment := fmt.Sprintf("pftap lab session, %s\n%s", time.Now().UTC().Format(time.RFC3339), session.Meta{Header: s.desc.Header, PodNetns: s.desc.PodNetns, Facts: &s.desc.Facts}.Encode())
	if err := pipe.StartRecording(comment); err != nil {
		s.stopCaptures()
		return nil, err
	}
	return s, nil
}

// readRouted reads the real kube-apiserver's count of how it routed
// WebSocket port-forwards (session.StreamingMetric); nothing with pftap's
// own apiserver.
func (s *Lab) readRouted(ctx context.Context) session.Routed {
	if s.lab.APIServerVersion() == "" {
		return session.Routed{}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	lines, err := s.lab.Metrics(ctx, session.StreamingMetric)
	if err != nil {
		return session.Routed{Why: "the apiserver's /metrics could not be read: " + err.Error()}
	}
	return session.ParseRouted(strings.Join(lines, "\n"))
}

// legRingMiB is the capture ring of a leg the forward crosses: it holds
// what arrives while the goroutine that drains and decodes it waits for a
// CPU (at the lab's ~250 MB/s, 32 MiB is about 130 ms). The kernel zeroes
// every ring when it is made, which a short run pays for.
const legRingMiB = 32

// witnessRingMiB is the capture ring of the pod's eth0, which the forward
// never crosses.
const witnessRingMiB = 4

// openCaptures adds the captured legs (L2 on the wire as TLS records, L3
// on the node's lo, L4 on the pod's lo, the pod's eth0 as the witness)
// and, when live, opens their captures and drains them into the pipeline.
// It returns what stops them.
func (s *Lab) openCaptures(live bool) (stop func(), poll func() uint64, err error) {
	type source struct {
		leg int
		src *capture.Source
	}
	var srcs []source
	closeAll := func() {
		for _, sr := range srcs {
			sr.src.Close()
		}
	}
	for _, lg := range s.lab.Legs {
		name := string(lg.ID) + " " + strings.ReplaceAll(lg.Name, " → ", "→")
		id := lg.ID
		ring := legRingMiB
		port := int(lg.Server.Port())
		switch lg.ID {
		case leg.L1:
			switch {
			case s.lab.Direct != nil:
				// A middlebox's side of L1, on the link: its resets.
				name, id = "L1 via middlebox (TLS)", leg.Unknown
			case s.l1 >= 0:
				continue // the plaintext tap covers it
			default:
				name = "L1 on the wire (TLS)" // kubectl to the real kube-apiserver
			}
		case leg.L2:
			name, id = "L2 on the wire (TLS)", leg.L2Wire
		case leg.L4:
			port = s.remote
		case leg.Witness:
			// Nothing of the forward crosses eth0: a small ring, which
			// still holds a burst if something unexpected does.
			name, ring, port = "witness pod eth0", witnessRingMiB, s.remote
		}
		idx := s.pipe.AddLeg(capture.Leg{Leg: leg.Leg{ID: id, Name: name, Description: lg.About}}, false)
		if !live {
			continue
		}
		src, err := capture.Open(capture.Options{Netns: lg.Netns, Interface: lg.Interface, Filter: fmt.Sprintf("tcp port %d", port), BufferMiB: ring})
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		srcs = append(srcs, source{idx, src})
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	for _, sr := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			capture.Drain(sr.src, done, func(data []byte, ci gopacket.CaptureInfo) { s.pipe.Captured(sr.leg, ci.Timestamp, data, ci.Length) })
		}()
	}
	var once sync.Once
	var mu sync.Mutex
	dropped := make([]uint64, len(srcs)) // read so far, per source
	stopped := false
	poll = func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		var total uint64
		for i, sr := range srcs {
			if !stopped {
				if st, err := sr.src.Stats(); err == nil {
					dropped[i] += st.Drops
				}
			}
			total += dropped[i]
		}
		return total
	}
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			mu.Lock()
			for i, sr := range srcs {
				st, _ := sr.src.Stats()
				st.Drops += dropped[i]
				s.pipe.SetStats(sr.leg, st)
			}
			stopped = true
			mu.Unlock()
			closeAll()
		})
	}, poll, nil
}

// Progress is how far a session has got: the bytes each leg has taken
// (by Legs' order) and the kernel's drops so far.
type Progress struct {
	Bytes []int64
	Drops uint64
}

// Progress says how far the session has got; it may be called while it
// runs.
func (s *Lab) Progress() Progress {
	return Progress{Bytes: s.pipe.Moved(), Drops: s.pollDrops()}
}

// Description is the session's, as it starts.
func (s *Lab) Description() session.Description { return s.desc }

// Legs are the session's legs, in the order of their interfaces in a
// recording.
func (s *Lab) Legs() []leg.Leg {
	var out []leg.Leg
	for _, l := range s.pipe.Legs() {
		out = append(out, l.Leg)
	}
	return out
}

// Decodes says whether the session decodes its frames (Taps without
// CountOnly); one that does not has nothing to render.
func (s *Lab) Decodes() bool { return s.pipe.Decodes() }

// Events hands every decoded event to emit, in time order, as the session
// goes; it returns once Run has ended, with what the decoding found. Call
// it once, beside Run. A session that only counts its frames has none.
func (s *Lab) Events(emit func(*decode.Event)) session.Decoded {
	var listening []string
	var once sync.Once
	return s.pipe.Events(func(e *decode.Event) {
		if e.Kind == decode.KindStreamError && e.Diagnosis != "" {
			// What listens in the pod tells a refused dial apart (the
			// app on the pod's IP only), as trace's agent does.
			once.Do(func() {
				if ls, err := capture.Listeners(s.lab.PodNetns); err == nil {
					for _, l := range ls {
						listening = append(listening, l.String())
					}
				}
			})
			if listening != nil {
				e.Diagnosis = decode.RefineRefused(e.Diagnosis, e, listening)
			}
		}
		emit(e)
	})
}

// drainFailed lets the connections of a client that failed to start
// close on every leg before the taps stop: the refusals and closes that
// say why are the evidence.
func (s *Lab) drainFailed() {
	if s.ctx.Err() == nil {
		s.pipe.Drain(session.ConnsClosed, session.DrainConns)
	}
}

// kubectlLog is what kubectl printed but for the lines every run prints.
func kubectlLog(out string) []string {
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		if line = strings.TrimRight(line, "\r "); line == "" || strings.HasPrefix(line, "Forwarding from ") || strings.HasPrefix(line, "Handling connection for ") {
			continue
		}
		lines = append(lines, line)
	}
	return lines
}

// ClientResetAfter is how much of a body FaultClientReset's client reads
// before it resets.
const ClientResetAfter = 1 << 20

// StreamEOFAfter is how long FaultStreamEOF's runtime hangs before it
// dies.
const StreamEOFAfter = time.Second

// Run starts the port-forward, sends the requests, drains, stops the
// client and the taps and tears the lab down. Events ends with it.
func (s *Lab) Run() (LabResult, error) {
	s.ran = true
	defer s.pipe.End()
	defer s.lab.Close()
	defer s.stopCaptures()
	ctx, o, l := s.ctx, s.o, s.lab
	// The local port: the client's own pick (kubectl's retried when
	// another process takes it first).
	var local int
	inprocTaps := o.Taps&NoInProcess == 0
	var stopClient func()
	var clientLog func() []string
	switch o.Client {
	case session.Kubectl:
		kf, err := kubectl.PortForward(ctx, kubectl.Options{Kubeconfig: l.Kubeconfig, Target: "pod/" + l.Config().Pod,
			Remote: s.remote, Kubectl: o.Kubectl})
		if err != nil {
			s.drainFailed()
			return LabResult{}, err
		}
		local = kf.Local
		stopClient = kf.Stop
		clientLog = func() []string { return kubectlLog(kf.Output()) }
	default:
		var mu sync.Mutex
		var said []string
		clientLog = func() []string {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(said)
		}
		pf, err := pfclient.Start(ctx, pfclient.Options{Server: l.APIServer, CA: l.CA, Token: l.Config().Token, Proxy: l.Proxy,
			Namespace: l.Config().Namespace, Pod: l.Config().Pod, Remote: s.remote, SPDY: o.SPDY,
			OnError: func(e pfclient.ClientError) {
				mu.Lock()
				said = append(said, e.Line)
				mu.Unlock()
			},
			Wrap: func(c net.Conn) net.Conn {
				if !inprocTaps {
					return c
				}
				return capture.NewTapParts(c, func(_ time.Time, head, payload []byte) { s.pipe.Tapped(s.l1, head, payload) }, capture.BelowTLS)
			}})
		if err != nil {
			s.drainFailed()
			return LabResult{}, err
		}
		local = pf.Local
		stopClient = pf.Stop
	}
	send := session.SendOptions{Concurrency: o.Concurrency, HeaderTimeout: o.HeaderTimeout}
	switch o.Fault {
	case FaultRuntimeHangs:
		// The runtime stops answering: the streams the requests open
		// get no reply.
		l.FreezeRuntime()
	case FaultStreamEOF:
		// Hung with the requests' streams waiting, then dead: the
		// connections close under them.
		l.FreezeRuntime()
		kill := time.AfterFunc(StreamEOFAfter, func() { l.KillRuntime() })
		defer kill.Stop()
	case FaultClientReset:
		send.Reset, send.ResetAfter = true, ClientResetAfter
	case FaultSandboxGone:
		// The pod deleted under the running forward: the next request's
		// streams reach a runtime that no longer has its sandbox.
		l.RemoveSandbox()
	case FaultRuntimeDies:
		// The runtime's streaming server dies while the bytes flow: once
		// the legs have moved a few MiB.
		done := make(chan struct{})
		defer close(done)
		go func() {
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				var moved int64
				for _, n := range s.pipe.Moved() {
					moved += n
				}
				if moved > 8<<20 {
					l.KillRuntime()
					return
				}
			}
		}()
	}
	var lingering lingerSet
	defer context.AfterFunc(ctx, lingering.cut)()
	if inprocTaps {
		send.Tap = func(c net.Conn) net.Conn {
			return &lingerConn{Tap: capture.NewTapParts(c, func(_ time.Time, head, payload []byte) { s.pipe.Tapped(s.user, head, payload) }), set: &lingering}
		}
	}
	results := session.Send(ctx, local, o.Requests, send)
	if o.Fault == FaultIdleDrop && ctx.Err() == nil {
		// Quiet for longer than the middlebox allows, then again.
		select {
		case <-ctx.Done():
		case <-time.After(l.Config().IdleAfter + 1500*time.Millisecond):
			results = append(results, session.Send(ctx, local, o.Requests, send)...)
		}
	}
	// The drain: every request ends on every leg before the client goes,
	// and every connection is closed on every leg before the taps stop.
	// Stopped by a signal: no wait for anything still on its way.
	stopped := ctx.Err() != nil
	if !stopped {
		drain := session.DrainRequests
		if o.Runtime == lab.RuntimeContainerd {
			// containerd closes a forwarded connection up to a second
			// after the client's end of it (its forwarder's linger).
			drain += session.ContainerdLinger
		}
		s.pipe.Drain(session.RequestsEnded, drain)
	}
	stopClient()
	lingering.wait()
	if !stopped {
		s.pipe.Drain(session.ConnsClosed, session.DrainConns)
	}
	s.stopCaptures()
	desc := s.desc
	if log := l.AppLog(); log != nil {
		desc.AppLog = appLog(log)
	}
	if clientLog != nil {
		desc.ClientLog = clientLog()
	}
	if s.lab.APIServerVersion() != "" {
		// The real apiserver's own account of how it routed them.
		r := s.readRouted(context.Background()).Since(s.routedBefore)
		desc.Routed = &r
	}
	s.result = &LabResult{Description: desc, Results: results, Drops: s.pipe.Drops()}
	return *s.result, nil
}

// Close ends the session if Run did not (it tears the lab down) and
// finishes the recording, with what is known only at the end when Run
// succeeded; what was recorded is kept either way. notice is
// CloseRecording's.
func (s *Lab) Close(notice func(queued int64)) (session.Recording, error) {
	var rec session.Recording
	var err error
	s.closeOnce.Do(func() {
		if !s.ran {
			s.stopCaptures()
			s.lab.Close()
		}
		m := session.Meta{}
		if s.result != nil {
			m = session.EndMeta(s.result.Description, s.result.Results, s.result.Drops)
		}
		rec, err = s.pipe.CloseRecording(m.Encode(), notice)
	})
	return rec, err
}

// appLog is the app's log as the session keeps it.
func appLog(log []lab.AppRequest) []session.AppRequest {
	out := make([]session.AppRequest, len(log))
	for i, a := range log {
		out[i] = session.AppRequest(a)
	}
	return out
}
