package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/pftap/pftap/leg"
	"github.com/pftap/pftap/session"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"k8s.io/klog/v2"

	"github.com/pftap/pftap/capture"
	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/decode/packet"
	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/internal/pfclient"
	"github.com/pftap/pftap/lab"
	"github.com/pftap/pftap/timeline"
)

// LabRunOptions are the inputs of `pftap lab`, the main job.
type LabRunOptions struct {
	IO          *IOStreams
	Runtime     string
	App         string
	Client      string
	SPDY        bool
	NoWebSocket bool
	Requests    []string
	Concurrency int
	// Repeat sends each request this many times (validation expands it).
	Repeat int
	// HeaderTimeout bounds the wait for a response's header; a body is
	// never timed out (it can be studied as long as it takes).
	HeaderTimeout time.Duration
	// RemotePort is the pod port to forward to; 0: the app's.
	RemotePort int
	Write      string
	HTML       string
	JSON       bool
	Verbosity  int
	NoColor    bool
	// taps chooses the taps, for measuring what they cost: "" (all, as
	// users run it), "none" (the same chain and requests, nothing tapped
	// or recorded), "nostore" (every tap, the frames counted and
	// dropped), "inprocess" (only L1 and L2 below TLS) or "live" (only
	// the packet captures).
	taps string
}

// recorder collects the frames of every leg, live captures and in-process
// taps alike. Each leg is decoded where its frames arrive, nothing kept
// (see liveDecoder); with -w each frame is also handed to the stream
// writer, which writes the recording as the session goes (see
// session.Recorder).
type recorder struct {
	mu     sync.Mutex // guards legs while legs are added
	legs   []capture.Leg
	stream *session.Recorder // with -w
	stats  map[int]capture.Stats
	// live decodes the frames as they come; nil when only measuring what
	// the taps cost.
	live *liveDecoder
	// discard counts the frames without keeping them (to measure what
	// the taps cost apart from recording).
	discard bool
	counted atomic.Int64
	// inproc marks the legs recorded by in-process taps.
	inproc map[int]bool
	err    atomicErr
}

type atomicErr struct {
	mu  sync.Mutex
	err error
}

func (a *atomicErr) set(err error) {
	a.mu.Lock()
	if a.err == nil {
		a.err = err
	}
	a.mu.Unlock()
}

func (a *atomicErr) get() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// newRecorder returns a recorder that decodes with live (nil: the frames
// are only counted, or not tapped) and, when stream is set, records every
// frame with it.
func newRecorder(live *liveDecoder, stream *session.Recorder) *recorder {
	return &recorder{stats: map[int]capture.Stats{}, inproc: map[int]bool{}, live: live, stream: stream}
}

// finish ends the live decoding's input: the renderer decodes what is
// left and stops.
func (r *recorder) finish() {
	if r.live != nil {
		r.live.finish()
	}
}

func (r *recorder) addLeg(l capture.Leg) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.legs = append(r.legs, l)
	if r.live != nil {
		r.live.addLeg(leg.Leg{ID: l.ID, Name: l.Name, Description: l.Description})
	}
	if r.stream != nil {
		r.stream.AddLeg()
	}
	return len(r.legs) - 1
}

// captured records a frame of a live capture: its time, bytes and length
// on the wire.
func (r *recorder) captured(leg int, ts time.Time, data []byte, orig int) {
	if r.discard {
		r.counted.Add(int64(len(data)))
		return
	}
	if r.live != nil {
		r.live.frame(leg, ts, data)
	}
	if r.stream != nil {
		r.stream.Add(leg, ts, data, nil, orig)
	}
}

// tapped records a frame of an in-process tap, given as its headers and
// its payload. It is stamped when decoded, under its leg's lock (see
// liveDecoder.parts), and recorded with that stamp, so that the file holds
// what was decoded.
func (r *recorder) tapped(leg int, head, payload []byte) {
	if r.discard {
		r.counted.Add(int64(len(head) + len(payload)))
		return
	}
	var keep func(ts time.Time)
	if r.stream != nil {
		keep = func(ts time.Time) { r.stream.Add(leg, ts, head, payload, 0) }
	}
	if r.live != nil {
		r.live.parts(leg, head, payload, keep)
	} else if keep != nil {
		keep(time.Now())
	}
}

// close drops the frames of a live recorder that still come.
func (r *recorder) close() {
	r.finish()
}

// quietUpstream stops the upstream Kubernetes code in the lab (klog) from
// writing to the terminal: its complaints about connections pftap itself
// closes would read like pftap's own errors.
func quietUpstream() {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	fs.Set("logtostderr", "false")
	fs.Set("alsologtostderr", "false")
	fs.Set("stderrthreshold", "FATAL")
	klog.SetOutput(io.Discard)
}

func labRun(opts *LabRunOptions) error {
	_, err := runLab(opts)
	return err
}

// runLab is `pftap lab`: the session and its rendering. The frames are
// decoded as they come and the timeline is printed during the run; with -w
// every frame is also written to the file as the session goes (see
// session.Recorder), and what is known only at the end once it has ended,
// whether it succeeded or not.
func runLab(opts *LabRunOptions) (*labSession, error) {
	measureOnly := opts.taps == "none" || opts.taps == "nostore" || opts.taps == "kernel"
	if measureOnly {
		rec := newRecorder(nil, nil)
		defer rec.close()
		return runLabSession(opts, rec, nil)
	}
	var stream *session.Recorder
	if opts.Write != "" {
		f, err := capture.CreateFile(opts.Write)
		if err != nil {
			return nil, err
		}
		stream = session.NewRecorder(f)
	}
	rec := newRecorder(newLiveDecoder(opts.Verbosity), stream)
	defer rec.close()
	var started bool
	var renderErr error
	var final *labSession // set before rec.finish, read by the renderer after its last event
	rendered := make(chan struct{})
	var streamErr error
	sess, err := runLabSession(opts, rec, func(info labDescription) {
		started = true
		if stream != nil {
			comment := fmt.Sprintf("pftap lab session, %s\n%s", time.Now().UTC().Format(time.RFC3339), session.Meta{Header: info.header, PodNetns: info.podLo}.Encode())
			streamErr = stream.Start(comment, rec.legs, rec.inproc)
		}
		v := labView(rec, info)
		v.after = func() {
			// final is only set, and safe to read, once the session has
			// ended, which the decoding has waited for.
			if final == nil {
				v.failOnResults = false // the session failed: its error is the one to say
				return
			}
			v.info, v.results = final.info, final.results
			for i := range v.drops {
				v.drops[i] = final.rec.stats[i].Drops
			}
		}
		go func() {
			defer close(rendered)
			renderErr = renderSession(labRenderOptions(opts), v)
		}()
	})
	if !started {
		if stream != nil {
			stream.Abandon()
		}
		return sess, err
	}
	if err == nil {
		final = sess
	}
	rec.finish()
	<-rendered
	writeErr := streamErr
	if stream != nil {
		// What was recorded is kept, also when the session failed.
		m := session.Meta{}
		if sess != nil {
			m = endMeta(sess.info, sess.results, rec)
		}
		n, size, err := stream.Finish(func(i int) uint64 { return rec.stats[i].Drops }, m.Encode(), func(queued int) {
			fmt.Fprintf(opts.IO.ErrOut, "pftap lab: writing the last %s of the recording to %s\n", formatSize(int64(queued)), opts.Write)
		})
		if writeErr == nil {
			writeErr = err
		}
		fmt.Fprintf(opts.IO.ErrOut, "pftap lab: wrote %s (%d packets, %s)\n", opts.Write, n, formatSize(size))
	}
	switch {
	case err != nil:
		return sess, err
	case writeErr != nil:
		return sess, writeErr
	}
	return sess, renderErr
}

// labSession is what a lab run leaves to render: the recorded legs, what
// the lab was, and what the requests got.
type labSession struct {
	rec     *recorder
	info    labDescription
	results []reqResult
}

// runLabSession builds the lab, taps it (as opts.taps says), forwards,
// sends the requests and tears the lab down. The caller closes the
// session's recorder.
func runLabSession(opts *LabRunOptions, rec *recorder, ready func(info labDescription)) (sess *labSession, err error) {
	quietUpstream()
	inprocTaps := opts.taps == "" || opts.taps == "inprocess" || opts.taps == "nostore"
	liveTaps := opts.taps == "" || opts.taps == "live" || opts.taps == "nostore" || opts.taps == "kernel"
	if done, _ := lab.Clean(); len(done) > 0 {
		fmt.Fprintf(opts.IO.ErrOut, "pftap: cleaned up after a lab that died: %s\n", strings.Join(done, ", "))
	}
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	defer stop()
	rec.discard = opts.taps == "nostore" || opts.taps == "kernel"
	// The user's leg: pftap's own requests to the port-forward's local
	// port, tapped where pftap makes them.
	userLeg := rec.addLeg(capture.Leg{ID: leg.User, Name: "user→" + opts.Client, Description: "the requests to the port-forward's local port, recorded inside pftap's HTTP client"})
	// L1 below TLS: inside pftap's own client, or (for kubectl) inside the
	// lab's apiserver; L2 below TLS inside the lab's kubelet.
	l1 := rec.addLeg(capture.Leg{ID: leg.L1, Name: "L1 client→apiserver", Description: "plaintext below TLS, recorded inside " +
		map[string]string{"pftap": "pftap's port-forward client", "kubectl": "the lab's apiserver"}[opts.Client]})
	tapLegs := map[string]int{
		"L2": rec.addLeg(capture.Leg{ID: leg.L2, Name: "L2 apiserver→kubelet", Description: "plaintext below TLS, recorded inside the lab's kubelet"}),
	}
	if opts.Client == "kubectl" {
		tapLegs["L1"] = l1
	}
	rec.inproc[userLeg], rec.inproc[l1], rec.inproc[tapLegs["L2"]] = true, true, true
	cfg := lab.Config{Runtime: opts.Runtime, App: opts.App, NoWebSocket: opts.NoWebSocket}
	if inprocTaps {
		cfg.TapConn = func(leg string, c net.Conn) net.Conn {
			idx, ok := tapLegs[leg]
			if !ok {
				return c
			}
			return capture.NewServerTapParts(c, func(_ time.Time, head, payload []byte) { rec.tapped(idx, head, payload) }, capture.BelowTLS)
		}
	}
	l, err := lab.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	local, err := kubectl.FreePort()
	if err != nil {
		return nil, err
	}

	// Live captures: L2 on the wire (TLS records), L3 on the node's lo,
	// L4 on the pod's lo, and the pod's eth0 as the witness.
	type live struct {
		leg int
		src *capture.Source
	}
	var lives []live
	open := func(leg capture.Leg, netns, iface, filter string, ringMiB int) error {
		idx := rec.addLeg(leg)
		if !liveTaps {
			return nil
		}
		src, err := capture.Open(capture.Options{Netns: netns, Interface: iface, Filter: filter, BufferMiB: ringMiB})
		if err != nil {
			return err
		}
		lives = append(lives, live{idx, src})
		return nil
	}
	// The port the forward reaches in the pod: the app's, or the one
	// asked for (where perhaps nothing listens: the refusal is on L4).
	remote := l.Config().AppPort
	if opts.RemotePort != 0 {
		remote = opts.RemotePort
	}
	for _, lg := range l.Legs {
		name := string(lg.ID) + " " + strings.ReplaceAll(lg.Name, " → ", "→")
		id := lg.ID
		ring := legRingMiB
		port := int(lg.Server.Port())
		switch lg.ID {
		case leg.L1:
			continue // the plaintext tap covers it
		case leg.L2:
			name, id = "L2 on the wire (TLS)", leg.L2Wire
		case leg.L4:
			port = remote
		case leg.Witness:
			// Nothing of the forward crosses eth0: a small ring, which
			// still holds a burst if something unexpected does.
			name, ring, port = "witness pod eth0", witnessRingMiB, remote
		}
		if err := open(capture.Leg{ID: id, Name: name, Description: lg.About}, lg.Netns, lg.Interface, fmt.Sprintf("tcp port %d", port), ring); err != nil {
			for _, lv := range lives {
				lv.src.Close()
			}
			return nil, err
		}
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	for _, lv := range lives {
		wg.Add(1)
		go func(lv live) {
			defer wg.Done()
			capture.Drain(lv.src, done, func(data []byte, ci gopacket.CaptureInfo) { rec.captured(lv.leg, ci.Timestamp, data, ci.Length) })
		}(lv)
	}
	stopCaptures := func() {
		close(done)
		wg.Wait()
		for _, lv := range lives {
			st, _ := lv.src.Stats()
			rec.stats[lv.leg] = st
			lv.src.Close()
		}
	}
	if ready != nil {
		ready(describeLab(l, opts.Client, opts.SPDY))
	}

	// The port-forward and the requests.
	var stopClient func()
	switch opts.Client {
	case "kubectl":
		kf, err := kubectl.PortForward(ctx, kubectl.Options{Kubeconfig: l.Kubeconfig, Target: "pod/" + l.Config().Pod,
			Remote: remote, Local: local, WebSocket: !opts.SPDY})
		if err != nil {
			stopCaptures()
			return nil, err
		}
		stopClient = kf.Stop
	default:
		pf, err := pfclient.Start(ctx, pfclient.Options{Server: l.APIServer, CA: l.CA, Token: l.Config().Token,
			Namespace: l.Config().Namespace, Pod: l.Config().Pod, Local: local, Remote: remote, SPDY: opts.SPDY,
			Wrap: func(c net.Conn) net.Conn {
				if !inprocTaps {
					return c
				}
				return capture.NewTapParts(c, func(_ time.Time, head, payload []byte) { rec.tapped(l1, head, payload) }, capture.BelowTLS)
			}})
		if err != nil {
			stopCaptures()
			return nil, err
		}
		stopClient = pf.Stop
	}
	var tapUser func(net.Conn) net.Conn
	var lingering lingerSet
	defer context.AfterFunc(ctx, lingering.cut)()
	if inprocTaps {
		tapUser = func(c net.Conn) net.Conn {
			return &lingerConn{Tap: capture.NewTapParts(c, func(_ time.Time, head, payload []byte) { rec.tapped(userLeg, head, payload) }), set: &lingering}
		}
	}
	results := sendRequests(ctx, local, opts.Requests, opts.Concurrency, opts.HeaderTimeout, tapUser)
	// The drain policy: every request ends on every leg before the client
	// goes, and every connection is closed on every leg before the taps
	// stop, each bounded. Stopped by a signal: no wait for anything still
	// on its way.
	stopped := ctx.Err() != nil
	if !stopped {
		drain(rec.live, func(_, requests int) bool { return requests == 0 }, drainRequests)
	}
	stopClient()
	lingering.wait()
	if !stopped {
		drain(rec.live, func(conns, _ int) bool { return conns == 0 }, drainConns)
	}
	stopCaptures()
	labInfo := describeLab(l, opts.Client, opts.SPDY)
	if l.App != nil {
		labInfo.appLog = l.App.Log()
	}
	l.Close()
	return &labSession{rec: rec, info: labInfo, results: results}, nil
}

type reqResult struct {
	what   string
	status string
	bytes  int64
	took   time.Duration
	err    error
}

// labUserAgent is the User-Agent of the requests pftap lab sends. With it,
// pftap lab's requests are byte for byte what `curl -A pftap-lab` sends, so
// a recording of them replays with curl (see docs/replay.md).
const labUserAgent = "pftap-lab"

// A lab session drains before it ends: once the user's requests are
// answered, the client waits until every port-forward request has ended
// on every leg (its streams closed or reset there) for at most
// drainRequests; once the client has gone, the taps wait until every
// connection is closed both ways on every leg (the peers' FINs and
// GOAWAYs seen) for at most drainConns. A session that is only measured
// (no decoder) does not wait.
const (
	drainRequests = time.Second
	drainConns    = time.Second
	drainPoll     = 2 * time.Millisecond
)

// drain waits until done says the live decoding has seen enough, or for
// at most within.
func drain(live *liveDecoder, done func(conns, requests int) bool, within time.Duration) {
	if live == nil {
		return
	}
	deadline := time.Now().Add(within)
	for {
		if done(live.pending()) || time.Now().After(deadline) {
			return
		}
		time.Sleep(drainPoll)
	}
}

// defaultHeaderTimeout is how long a lab request waits for its response's
// header (--header-timeout).
const defaultHeaderTimeout = 30 * time.Second

// lingerFor bounds how long a closed user connection waits for its peer's
// FIN.
const lingerFor = 2 * time.Second

// lingerConn closes as a socket does, which the kernel keeps open for its
// peer's FIN: Close sends this end's FIN and returns, and the peer's last
// bytes and FIN are still read, so that the tap under it records them as a
// capture of the connection would, for at most lingerFor; then the
// connection is closed.
type lingerConn struct {
	*capture.Tap
	set  *lingerSet
	once sync.Once
}

// lingerSet tracks the lingering connections so that the session waits for
// them; once it waits, connections close at once.
type lingerSet struct {
	mu      sync.Mutex
	wg      sync.WaitGroup
	waiting bool
	conns   map[*lingerConn]bool
}

func (c *lingerConn) Close() error {
	c.once.Do(func() {
		err := c.Tap.CloseWrite()
		c.set.mu.Lock()
		linger := err == nil && !c.set.waiting
		if linger {
			c.set.wg.Add(1)
		}
		c.set.mu.Unlock()
		if !linger {
			c.Tap.Close()
			return
		}
		c.set.mu.Lock()
		if c.set.conns == nil {
			c.set.conns = map[*lingerConn]bool{}
		}
		c.set.conns[c] = true
		c.Tap.SetReadDeadline(time.Now().Add(lingerFor))
		c.set.mu.Unlock()
		go func() {
			defer c.set.wg.Done()
			io.Copy(io.Discard, c.Tap)
			c.set.mu.Lock()
			delete(c.set.conns, c)
			c.set.mu.Unlock()
			c.Tap.Close()
		}()
	})
	return nil
}

// wait waits for the lingering connections (at most lingerFor).
func (s *lingerSet) wait() {
	s.mu.Lock()
	s.waiting = true
	s.mu.Unlock()
	s.wg.Wait()
}

// cut ends every lingering connection now, and makes connections closed
// from now on close at once (the user stopped the session).
func (s *lingerSet) cut() {
	s.mu.Lock()
	s.waiting = true
	for c := range s.conns {
		c.Tap.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
}

// legRingMiB is the capture ring of a leg the forward crosses: it holds
// what arrives while the goroutine that drains and decodes it waits for a
// CPU (at the lab's ~250 MB/s, 32 MiB is about 130 ms). The kernel zeroes
// every ring when it is made, which a short run pays for.
const legRingMiB = 32

// witnessRingMiB is the capture ring of the pod's eth0, which the forward
// never crosses.
const witnessRingMiB = 4

// sendRequests sends each request on its own connection (each is one
// port-forward request), concurrency at a time, and closes the connection
// once the response is read, as curl does. tap, when set, wraps each
// connection (to record the user's leg).
func sendRequests(ctx context.Context, port int, reqs []string, concurrency int, headerTimeout time.Duration, tap func(net.Conn) net.Conn) []reqResult {
	if headerTimeout <= 0 {
		headerTimeout = defaultHeaderTimeout
	}
	out := make([]reqResult, len(reqs))
	sem := make(chan struct{}, max(concurrency, 1))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int, r string) {
			defer wg.Done()
			defer func() { <-sem }()
			method, path, perr := parseLabRequest(r)
			if perr != nil {
				out[i] = reqResult{what: r, err: perr}
				return
			}
			t0 := time.Now()
			res := reqResult{what: method + " " + path}
			// A transport of its own: no connection is shared between
			// requests, no Accept-Encoding is added.
			tr := &http.Transport{DisableCompression: true, ResponseHeaderTimeout: headerTimeout}
			if tap != nil {
				var d net.Dialer
				tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
					c, err := d.DialContext(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					return tap(c), nil
				}
			}
			defer tr.CloseIdleConnections()
			// No total timeout: a slow or long response is what some
			// sessions are there to study; ^C ends it.
			client := &http.Client{Transport: tr}
			req, err := http.NewRequestWithContext(ctx, method, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
			if err == nil {
				req.Header.Set("User-Agent", labUserAgent)
				req.Header.Set("Accept", "*/*")
				var resp *http.Response
				if resp, err = client.Do(req); err != nil {
					err = requestError(ctx, err)
				} else {
					var cerr error
					res.bytes, cerr = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					res.status = resp.Status
					if cerr != nil {
						// A body cut short (the forward broke, or ^C) is a
						// failed request, whatever its status line said.
						err = fmt.Errorf("%s, but the body was cut short after %d bytes: %w", resp.Status, res.bytes, requestError(ctx, cerr))
					}
				}
			}
			tr.CloseIdleConnections()
			res.err, res.took = err, time.Since(t0)
			out[i] = res
		}(i, r)
	}
	wg.Wait()
	return out
}

// requestError says why a request through the port-forward failed in the
// terms of the forward, not of the HTTP client's internals (its URL on the
// local port, "context canceled").
func requestError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return fmt.Errorf("stopped: %w", context.Cause(ctx))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("the port-forward closed the connection: %w", err)
	case errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("the port-forward reset the connection: %w", err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("no response header within the header timeout (--header-timeout): %v", err)
	}
	return err
}

type labDescription struct {
	header string
	podLo  string
	// appLog is what the built-in app logged: the ground truth of which
	// connection on the pod's lo asked for what.
	appLog []lab.AppRequest
}

func describeLab(l *lab.Lab, client string, spdy bool) labDescription {
	c := l.Config()
	var b strings.Builder
	app := c.App
	if app == lab.AppBuiltin {
		app = "built-in app"
	}
	who := "pftap's own port-forward client (client-go, WebSocket first, SPDY fallback)"
	switch {
	case client == "kubectl" && spdy:
		who = "kubectl port-forward (SPDY/3.1: KUBECTL_PORT_FORWARD_WEBSOCKETS=false)"
	case client == "kubectl":
		who = "kubectl port-forward"
	case spdy:
		who = "pftap's own port-forward client (client-go, SPDY/3.1)"
	}
	fmt.Fprintf(&b, "pftap lab: %s to pod/%s through a local chain (%s runtime, %s), every leg tapped\n\n", who, c.Pod, c.Runtime, app)
	b.WriteString(chainDiagram(l, client))
	return labDescription{header: b.String(), podLo: l.PodNetns}
}

// chainDiagram draws the lab's chain top to bottom: each process with its
// address and network namespace, and between two of them the leg that
// joins them, what it carries and where pftap taps it.
func chainDiagram(l *lab.Lab, client string) string {
	type box struct{ name, where string }
	type link struct{ text string }
	netnsOf := map[string]string{"apiserver": l.CPNetns, "kubelet": l.NodeNetns, "runtime": l.NodeNetns, "socat": l.PodNetns, "app": l.PodNetns}
	title := map[string]string{"apiserver": "kube-apiserver", "kubelet": "kubelet", "runtime": "runtime streaming server", "socat": "socat", "app": "app"}
	clientName := map[string]string{"pftap": "pftap (its port-forward client)", "kubectl": "kubectl port-forward"}[client]
	boxes := []box{{clientName, "host"}}
	var links []link
	var witness *lab.Leg
	prev := "client"
	for i := range l.Legs {
		lg := l.Legs[i]
		if lg.ID == leg.Witness {
			witness = &l.Legs[i]
			continue
		}
		from, to, _ := strings.Cut(lg.Name, " → ")
		if from != prev {
			// socat: the kubelet pipes the stream into a process it
			// started in the pod's namespace; no socket, nothing on a wire.
			links = append(links, link{"(a pipe to a process the kubelet started: nothing on any interface)"})
			boxes = append(boxes, box{title[from] + ", started by the kubelet with nsenter", "netns " + netnsOf[from]})
		}
		prev = to
		var how string
		switch {
		case lg.ID == leg.L1 && client == "kubectl":
			how = "TLS; tapped below TLS inside the lab's apiserver"
		case lg.ID == leg.L1:
			how = "TLS; tapped below TLS inside pftap's client"
		case lg.ID == leg.L2:
			how = fmt.Sprintf("TLS; tapped below TLS inside the kubelet, and on the wire (netns %s %s)", lg.Netns, lg.Interface)
		case lg.ID == leg.L3:
			how = fmt.Sprintf("plain HTTP upgrade, then SPDY/3.1; captured on lo (netns %s)", lg.Netns)
		default:
			how = fmt.Sprintf("plain TCP, the app's own bytes; captured on lo (netns %s)", lg.Netns)
		}
		if !lg.TLS {
			how = strings.Replace(how, "TLS; tapped below TLS", "plain HTTP; tapped", 1)
		}
		links = append(links, link{fmt.Sprintf("%-3s %-22s %s", lg.ID, lg.Name, how)})
		where := "netns " + netnsOf[to]
		if to == "apiserver" || to == "kubelet" {
			where = fmt.Sprintf("netns %s (reached from the %s)", netnsOf[to], map[string]string{"apiserver": "host over " + l.Legs[0].Interface, "kubelet": "apiserver's namespace"}[to])
		}
		boxes = append(boxes, box{fmt.Sprintf("%s %s", title[to], lg.Server), where})
	}
	width := 0
	for _, bx := range boxes {
		width = max(width, len([]rune(bx.name)))
	}
	var b strings.Builder
	for i, bx := range boxes {
		fmt.Fprintf(&b, "  %s%s  %s\n", bx.name, strings.Repeat(" ", width-len([]rune(bx.name))), bx.where)
		if i < len(links) {
			fmt.Fprintf(&b, "    │ %s\n    ▼\n", links[i].text)
		}
	}
	if witness != nil {
		fmt.Fprintf(&b, "  %s  the pod's eth0 %s, captured as a witness: port-forward never crosses it\n", strings.Repeat(" ", width), witness.Server.Addr())
	}
	return b.String()
}

// renderOptions are the output choices of a rendered session, live
// (`pftap lab`) or replayed (`pftap replay`).
type renderOptions struct {
	IO        *IOStreams
	JSON      bool
	HTML      string
	Verbosity int
	NoColor   bool
	// Title heads the HTML page.
	Title string
}

// sessionView is a whole session to render: its legs, its decoding, and
// what the lab knew about it.
type sessionView struct {
	// legs are the legs' names and legIDs their places in the chain, by
	// interface index.
	legs   []string
	legIDs []leg.ID
	drops  []uint64 // per leg
	// decode decodes the session, handing every event to emit in time
	// order (see decodePackets, and liveDecoder.run).
	decode  func(emit func(*decode.Event)) (decodedSession, error)
	info    labDescription
	results []reqResult
	// failOnResults makes a failed request an error (live runs).
	failOnResults bool
	// after, when set, runs once every packet has been read: a live
	// session completes the view there (results, the app's log, drops).
	after func()
}

func labRenderOptions(opts *LabRunOptions) renderOptions {
	return renderOptions{IO: opts.IO, JSON: opts.JSON, HTML: opts.HTML, Verbosity: opts.Verbosity, NoColor: opts.NoColor, Title: "pftap lab"}
}

// decodedSession is what decoding a session leaves beside its events.
type decodedSession struct {
	sum  decode.Summary
	corr *timeline.Correlator
	// records are the TLS records of the legs seen only as TLS.
	records []decode.TLSRecord
}

// decodePackets decodes packets given in time order (each calls fn for
// every one) with one Decoder, correlating them as it goes.
func decodePackets(legs []string, ids []leg.ID, verbosity int, each func(fn func(p *packet.Packet) error) error) func(emit func(*decode.Event)) (decodedSession, error) {
	return func(emit func(*decode.Event)) (decodedSession, error) {
		res := decodedSession{corr: timeline.NewCorrelator()}
		res.corr.Digests = true
		d := decode.NewDecoder(decode.Options{Verbosity: verbosity, Chunks: res.corr.Chunk,
			Records: func(r *decode.TLSRecord) { res.records = append(res.records, *r) }}, emit)
		var ifs []packet.Interface
		for i, name := range legs {
			ifs = append(ifs, packet.Interface{Index: i, Name: name, Leg: ids[i]})
		}
		d.SetInterfaces(ifs)
		err := each(func(p *packet.Packet) error {
			d.Add(p)
			return nil
		})
		res.sum = d.Finish()
		return res, err
	}
}

// retransmitNote says what a leg carried twice (its bytes are counted
// once): a sign of loss, or of a receiver that stalled.
func retransmitNote(ls decode.LegSummary) string {
	if ls.Retransmitted == 0 && ls.RetransmittedBytes == 0 {
		return ""
	}
	return fmt.Sprintf("  %d retransmitted segments (%d bytes again)", ls.Retransmitted, ls.RetransmittedBytes)
}

// labView is a live lab session to render from rec, as its legs are
// decoded.
func labView(rec *recorder, info labDescription) *sessionView {
	v := &sessionView{info: info, failOnResults: true}
	for _, l := range rec.legs {
		v.legs = append(v.legs, l.Name)
		v.legIDs = append(v.legIDs, l.ID)
	}
	v.drops = make([]uint64, len(rec.legs))
	v.decode = func(emit func(*decode.Event)) (decodedSession, error) { return rec.live.run(emit), nil }
	return v
}

// renderSession prints a session: the header, the timeline, per-hop
// latencies, the requests, the legs, the witness and the app's log.
func renderSession(opts renderOptions, v *sessionView) error {
	info := v.info
	var sink eventSink
	var tw *timeline.TextWriter
	if opts.JSON {
		sink = timeline.NewJSONWriter(opts.IO.Out)
	} else {
		tw = timeline.NewTextWriter(opts.IO.Out, opts.IO.OutTTY && !opts.NoColor)
		sink = &legSizer{tw: tw}
		fmt.Fprintln(opts.IO.Out, info.header)
	}
	var kept []*decode.Event
	// The first failure the wire explains is what a failed session's
	// error says.
	var diagnosis string
	emit := func(e *decode.Event) {
		if diagnosis == "" && e.Diagnosis != "" {
			diagnosis = e.Diagnosis
		}
		if opts.HTML != "" {
			kept = append(kept, e)
		}
		sink.Event(e)
	}
	witness := -1
	for i, id := range v.legIDs {
		if id == leg.Witness {
			witness = i
		}
	}
	res, readErr := v.decode(emit)
	if v.after != nil {
		v.after()
	}
	info = v.info // a live session's app log arrives with its end
	sum := res.sum
	legSum := func(i int) decode.LegSummary {
		if i < 0 || i >= len(v.legs) {
			return decode.LegSummary{}
		}
		if ls := sum.Legs[v.legs[i]]; ls != nil {
			return *ls
		}
		return decode.LegSummary{}
	}
	// The TLS leg (L2 on the wire) is placed on each request's path by
	// its records' times.
	hops := timeline.AddTLSLegs(res.corr.Result(), res.records, 0, res.corr.SPDYLeg)
	sink.Hops(hops)
	if opts.HTML != "" {
		if err := writeHTMLFile(opts.HTML, opts.Title, kept, hops); err != nil {
			return err
		}
	}
	if tw != nil {
		out := opts.IO.Out
		if len(v.results) > 0 {
			fmt.Fprintln(out, "\nrequests sent through the port-forward's local port:")
		}
		for _, r := range v.results {
			if r.err != nil {
				fmt.Fprintf(out, "  %-24s FAILED: %v\n", r.what, r.err)
				continue
			}
			fmt.Fprintf(out, "  %-24s %s, %d bytes, %s\n", r.what, r.status, r.bytes, r.took.Round(time.Microsecond))
		}
		fmt.Fprintln(out, "\nlegs:")
		var drops uint64
		for i, name := range v.legs {
			var dr uint64
			if i < len(v.drops) {
				dr = v.drops[i]
			}
			drops += dr
			ls := legSum(i)
			note := ""
			if dr > 0 {
				note = fmt.Sprintf("  DROPPED %d packets: this leg has gaps", dr)
			}
			if ls.Gaps > 0 {
				note += fmt.Sprintf("  %d gaps", ls.Gaps)
			}
			note += retransmitNote(ls)
			fmt.Fprintf(out, "  %-28s %6d packets %10d bytes %5d SPDY frames %4d drops%s\n", name, ls.Packets, ls.Bytes, ls.SPDYFrames, dr, note)
		}
		if witness >= 0 {
			loPkts := 0
			for i, id := range v.legIDs {
				if id == leg.L4 {
					loPkts += legSum(i).Packets
				}
			}
			podLo := info.podLo
			if podLo == "" {
				podLo = "POD-NETNS"
			}
			fmt.Fprintf(out, "\nwhy tcpdump on the pod's eth0 shows nothing: eth0 saw %d packets of this traffic, the pod's lo %d.\n", legSum(witness).Packets, loPkts)
			fmt.Fprintf(out, "  The runtime does not reach the app through the pod's network: it enters the pod's network\n"+
				"  namespace and connects to localhost, so the forwarded bytes cross only the pod's loopback.\n"+
				"  To see them, capture lo inside the pod's namespace: pftap capture --netns %s -i lo\n", podLo)
		}
		if drops > 0 {
			fmt.Fprintf(out, "\nWARNING: the kernel dropped %d packets; the legs above that lost packets have gaps\n", drops)
		}
	}
	if tw != nil && len(info.appLog) > 0 {
		plural := "s"
		if len(info.appLog) == 1 {
			plural = ""
		}
		fmt.Fprintf(opts.IO.Out, "\nthe app in the pod served %d request%s (its own log):\n", len(info.appLog), plural)
		for _, a := range info.appLog {
			fmt.Fprintf(opts.IO.Out, "  from %-21s %s %s, %d bytes\n", a.Remote, a.Method, a.Path, a.Bytes)
		}
	}
	if jw, ok := sink.(*timeline.JSONWriter); ok {
		for _, a := range info.appLog {
			jw.Object(map[string]any{"kind": "app", "ts": a.Time, "remote": a.Remote, "method": a.Method, "path": a.Path, "bytes": a.Bytes})
		}
	}
	sink.Summary(sum)
	if err := sink.Err(); err != nil {
		return err
	}
	if readErr != nil {
		return readErr
	}
	if v.failOnResults {
		for _, r := range v.results {
			if r.err != nil {
				if diagnosis != "" {
					return fmt.Errorf("a request through the port-forward failed: %s: %s", r.what, diagnosis)
				}
				return fmt.Errorf("a request through the port-forward failed: %s: %v", r.what, r.err)
			}
		}
	}
	// As pftap decode: bytes that break the protocol fail the command.
	if sum.DecodeErrors > 0 {
		return fmt.Errorf("%d decode errors; first: %s", sum.DecodeErrors, sum.FirstError)
	}
	return nil
}

// endMeta is what a recording can say only at the end: the requests'
// results, the app's log, each leg's drops.
func endMeta(info labDescription, results []reqResult, rec *recorder) session.Meta {
	m := session.Meta{AppLog: toMetaLog(info.appLog)}
	for i := range rec.legs {
		m.Drops = append(m.Drops, rec.stats[i].Drops)
	}
	for _, r := range results {
		mr := session.Result{What: r.what, Status: r.status, Bytes: r.bytes, TookNS: int64(r.took)}
		if r.err != nil {
			mr.Error = r.err.Error()
		}
		m.Results = append(m.Results, mr)
	}
	return m
}

func toMetaLog(log []lab.AppRequest) []session.AppRequest {
	var out []session.AppRequest
	for _, a := range log {
		out = append(out, session.AppRequest(a))
	}
	return out
}

func fromMetaLog(log []session.AppRequest) []lab.AppRequest {
	var out []lab.AppRequest
	for _, a := range log {
		out = append(out, lab.AppRequest(a))
	}
	return out
}

// metaResults are the requests' results a recording's metadata holds.
func metaResults(m session.Meta) []reqResult {
	var results []reqResult
	for _, r := range m.Results {
		rr := reqResult{what: r.What, status: r.Status, bytes: r.Bytes, took: time.Duration(r.TookNS)}
		if r.Error != "" {
			rr.err = errors.New(r.Error)
		}
		results = append(results, rr)
	}
	return results
}

// formatSize says a file's size as a person reads it.
func formatSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
