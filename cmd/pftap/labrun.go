package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/lab"
	"github.com/pftap/pftap/labrun"
	"github.com/pftap/pftap/leg"
	"github.com/pftap/pftap/session"
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
	era         eraFlags
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
	PerRequest bool
	// Fault is --fault: one of labrun.Faults.
	Fault string
	// Kubectl is the kubectl binary --client kubectl runs ("": $PFTAP_KUBECTL,
	// else kubectl on PATH, else /usr/bin/kubectl).
	Kubectl string
	// taps leaves taps out, to measure what they cost (the zero value:
	// every tap, as users run it).
	taps labrun.Taps
}

func labRun(opts *LabRunOptions) error {
	_, err := runLab(opts)
	return err
}

// progressEvery is how often the status line is drawn again.
const progressEvery = 250 * time.Millisecond

// sessionOptions are the session's options from the command's.
func (opts *LabRunOptions) sessionOptions() (labrun.LabOptions, error) {
	o := labrun.LabOptions{Runtime: opts.Runtime, App: opts.App, Client: session.Client(opts.Client), SPDY: opts.SPDY,
		NoWebSocket: opts.NoWebSocket, Concurrency: opts.Concurrency, HeaderTimeout: opts.HeaderTimeout,
		RemotePort: opts.RemotePort, Write: opts.Write, Verbosity: opts.Verbosity, Taps: opts.taps,
		Kubernetes: opts.era.apiserver, Kubelet: opts.era.node, KubeletGateOff: opts.era.gateOff, StaleDeclaredFeatures: opts.era.stale, APIServer: opts.era.binary, Fault: opts.Fault, Kubectl: opts.Kubectl}
	for _, r := range opts.Requests {
		req, err := session.ParseRequest(r)
		if err != nil {
			return o, fmt.Errorf("--request %q: %w", r, err)
		}
		o.Requests = append(o.Requests, req)
	}
	return o, nil
}

// runLab is `pftap lab`: the session and its rendering. The frames are
// decoded as they come and the timeline is printed during the run; with -w
// every frame is also written to the file as the session goes, and what is
// known only at the end once it has ended, whether it succeeded or not.
func runLab(opts *LabRunOptions) (labrun.LabResult, error) {
	o, err := opts.sessionOptions()
	if err != nil {
		return labrun.LabResult{}, err
	}
	if done, _ := lab.Clean(); len(done) > 0 {
		fmt.Fprintf(opts.IO.ErrOut, "pftap: cleaned up after a lab that died: %s\n", strings.Join(done, ", "))
	}
	ctx, stop := signalContext(nil)
	defer stop()
	s, err := labrun.StartLab(ctx, o)
	if err != nil {
		return labrun.LabResult{}, err
	}
	if !s.Decodes() {
		// Only measuring what the taps cost: nothing to render.
		res, err := s.Run()
		s.Close(nil)
		return res, err
	}
	v := &sessionView{info: s.Description(), failOnResults: true}
	for _, l := range s.Legs() {
		v.legs = append(v.legs, l.Name)
		v.legIDs = append(v.legIDs, l.ID)
	}
	v.drops = make([]uint64, len(v.legs))
	v.decode = func(emit func(*decode.Event)) (session.Decoded, error) { return s.Events(emit), nil }
	// The session's result is known once Run has returned, after its
	// last event.
	var final *labrun.LabResult
	ended := make(chan struct{})
	v.after = func() {
		<-ended
		if final == nil {
			v.failOnResults = false // the session failed: its error is the one to say
			return
		}
		v.info, v.results = final.Description, final.Results
		copy(v.drops, final.Drops)
	}
	ropts := labRenderOptions(opts)
	// A single updating status line on a terminal: bytes and rate per
	// leg, elapsed, drops; nothing of it when piped or with --json.
	var status *statusLine
	if opts.IO.ErrTTY && !opts.JSON {
		var names []string
		for _, l := range s.Legs() {
			names = append(names, string(l.ID))
		}
		var rates legRates
		status = newStatusLine(opts.IO.ErrOut, opts.IO.Out, opts.IO.OutTTY, progressEvery, func(el time.Duration) string {
			p := s.Progress()
			return rates.line(el, names, p.Bytes, int64(p.Drops))
		})
		streams := *opts.IO
		streams.Out = status
		ropts.IO = &streams
	}
	rendered := make(chan error, 1)
	go func() { rendered <- renderSession(ropts, v) }()
	res, err := s.Run()
	if status != nil {
		status.Stop()
	}
	if err == nil {
		final = &res
	}
	close(ended)
	renderErr := <-rendered
	// What was recorded is kept, also when the session failed.
	rec, writeErr := s.Close(func(queued int64) {
		fmt.Fprintf(opts.IO.ErrOut, "pftap lab: writing the last %s of the recording to %s\n", formatSize(queued), opts.Write)
	})
	if rec.Path != "" {
		fmt.Fprintf(opts.IO.ErrOut, "pftap lab: wrote %s (%d packets, %s)\n", rec.Path, rec.Packets, formatSize(rec.Bytes))
	}
	switch {
	case err != nil:
		return res, err
	case writeErr != nil:
		return res, writeErr
	}
	return res, renderErr
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
	// PerRequest lists every request's hops (timeline.TextWriter).
	PerRequest bool
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
	// order (labrun.Lab.Events, session.File.Decode).
	decode  func(emit func(*decode.Event)) (session.Decoded, error)
	info    session.Description
	results []session.RequestResult
	// failOnResults makes a failed request an error (live runs).
	failOnResults bool
	// after, when set, runs once every packet has been read: a live
	// session completes the view there (results, the app's log, drops).
	after func()
}

func labRenderOptions(opts *LabRunOptions) renderOptions {
	return renderOptions{IO: opts.IO, JSON: opts.JSON, HTML: opts.HTML, Verbosity: opts.Verbosity, NoColor: opts.NoColor, Title: "pftap lab", PerRequest: opts.PerRequest}
}

// retransmitNote says what a leg carried twice (its bytes are counted
// once): a sign of loss, or of a receiver that stalled.
func retransmitNote(ls decode.LegSummary) string {
	if ls.Retransmitted == 0 && ls.RetransmittedBytes == 0 {
		return ""
	}
	return fmt.Sprintf("  %d retransmitted segments (%d bytes again)", ls.Retransmitted, ls.RetransmittedBytes)
}

// renderSession prints a session: the header, the timeline, per-hop
// latencies, the requests, the legs, the witness and the app's log.
func renderSession(opts renderOptions, v *sessionView) error {
	info := v.info
	var sink eventSink
	var tw *timeline.TextWriter
	if opts.JSON {
		jw := timeline.NewJSONWriter(opts.IO.Out)
		// What ran: the era and its versions, the runtime, the app, the
		// client and its version.
		if info.Facts.Runtime != "" {
			jw.Object(struct {
				Kind string `json:"kind"`
				session.Facts
			}{"lab", info.Facts})
		}
		sink = jw
	} else {
		tw = timeline.NewTextWriter(opts.IO.Out, opts.IO.OutTTY && !opts.NoColor)
		tw.PerRequest = opts.PerRequest
		sink = &legSizer{tw: tw}
		fmt.Fprintln(opts.IO.Out, info.Header)
	}
	var kept []*decode.Event
	// The first failure the wire explains is what a failed session's
	// error says.
	var diagnosis string
	// Who made each 101, as the legs tell.
	var upgrades timeline.Upgrades
	hasL3, hasL4 := false, false
	for _, id := range v.legIDs {
		hasL3, hasL4 = hasL3 || id == leg.L3, hasL4 || id == leg.L4
	}
	upgrades.NoRuntime = hasL4 && !hasL3
	diag := decode.NewDiagnoser()
	emit := func(e *decode.Event) {
		upgrades.Note(e)
		diag.Note(e)
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
	sum := res.Summary
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
	hops := timeline.AddTLSLegs(res.Correlator.Result(), res.Records, 0, res.Correlator.SPDYLeg)
	sink.Hops(hops)
	if opts.HTML != "" {
		// The scenario: who forwarded through which chain, and its era
		// (the header's first lines).
		lines := strings.SplitN(strings.TrimSpace(info.Header), "\n", 3)
		for i := range lines {
			lines[i] = strings.TrimSpace(lines[i])
		}
		scenario := strings.Join(lines[:min(2, len(lines))], ". ")
		if err := writeHTMLFile(opts.HTML, timeline.HTMLPage{Title: opts.Title, Scenario: scenario}, kept, hops); err != nil {
			return err
		}
	}
	if tw != nil {
		out := opts.IO.Out
		if len(v.results) > 0 {
			fmt.Fprintln(out, "\nrequests sent through the port-forward's local port:")
		}
		writeResults(out, v.results)
		fmt.Fprintln(out, "\nlegs:")
		var drops uint64
		for _, i := range v.chainOrder() {
			name := v.legs[i]
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
			podLo := info.PodNetns
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
	if tw != nil && len(info.AppLog) > 0 {
		plural := "s"
		if len(info.AppLog) == 1 {
			plural = ""
		}
		fmt.Fprintf(opts.IO.Out, "\nthe app in the pod served %d request%s (its own log):\n", len(info.AppLog), plural)
		writeAppLog(opts.IO.Out, info.AppLog)
	}
	client := info.Client
	if client == "" {
		client = session.Kubectl // recordings from before Client
	}
	if tw != nil && len(info.ClientLog) > 0 {
		if client == session.Kubectl {
			fmt.Fprintf(opts.IO.Out, "\nkubectl printed:\n")
		} else {
			fmt.Fprintf(opts.IO.Out, "\npftap's port-forward client (client-go) reported:\n")
		}
		for _, line := range info.ClientLog {
			fmt.Fprintf(opts.IO.Out, "  %s\n", line)
		}
	}
	if jw, ok := sink.(*timeline.JSONWriter); ok {
		for _, r := range v.results {
			o := map[string]any{"kind": "result", "what": r.What, "status": r.Status, "bytes": r.Bytes, "took_ns": r.Took}
			if r.Err != nil {
				o["error"] = r.Err.Error()
			}
			if r.Interrupted {
				o["interrupted"] = true
			}
			jw.Object(o)
		}
		var legs []map[string]any
		for _, i := range v.chainOrder() {
			name := v.legs[i]
			ls := legSum(i)
			var dr uint64
			if i < len(v.drops) {
				dr = v.drops[i]
			}
			m := map[string]any{"leg": name, "packets": ls.Packets, "bytes": ls.Bytes, "spdy_frames": ls.SPDYFrames, "gaps": ls.Gaps, "drops": dr}
			if i < len(v.legIDs) {
				m["leg_id"] = v.legIDs[i]
			}
			legs = append(legs, m)
		}
		jw.Object(map[string]any{"kind": "legs", "legs": legs})
		for _, a := range info.AppLog {
			jw.Object(map[string]any{"kind": "app", "ts": a.Time, "remote": a.Remote, "method": a.Method, "path": a.Path, "bytes": a.Bytes})
		}
		for _, line := range info.ClientLog {
			jw.Object(map[string]any{"kind": "client_log", "client": client, "line": line})
		}
	}
	diag.Captured = len(v.legs)
	findings := diag.Findings()
	if len(findings) > 0 {
		// The last line restates what the session's diagnosis says.
		diagnosis = findings[0].Text
	}
	sink.Diagnoses(findings)
	sink.Summary(sum)
	if err := sink.Err(); err != nil {
		return err
	}
	if readErr != nil {
		return readErr
	}
	if v.failOnResults {
		// Stopped by the user: said as such, no fault.
		var cut []string
		for _, r := range v.results {
			if r.Interrupted {
				cut = append(cut, fmt.Sprintf("%s (%d bytes had come)", r.What, r.Bytes))
			}
		}
		if len(cut) > 0 {
			what := "1 request was"
			if len(cut) > 1 {
				what = fmt.Sprintf("%d requests were", len(cut))
			}
			return fmt.Errorf("interrupted: stopped while %s under way: %s", what, strings.Join(cut[:min(3, len(cut))], ", "))
		}
		for _, r := range v.results {
			if r.Err != nil {
				if diagnosis != "" {
					return fmt.Errorf("a request through the port-forward failed: %s: %s", r.What, diagnosis)
				}
				return fmt.Errorf("a request through the port-forward failed: %s: %v", r.What, r.Err)
			}
		}
	}
	// As pftap decode: bytes that break the protocol fail the command.
	if sum.DecodeErrors > 0 {
		return fmt.Errorf("%d decode errors; first: %s", sum.DecodeErrors, sum.FirstError)
	}
	return nil
}

// chainOrder is the legs' indexes in the order of the chain (by their
// IDs; the order they were added among equals and for legs without one).
func (v *sessionView) chainOrder() []int {
	idx := make([]int, len(v.legs))
	for i := range idx {
		idx[i] = i
	}
	order := func(i int) int {
		if i < len(v.legIDs) {
			if o := v.legIDs[i].Order(); o >= 0 {
				return o
			}
		}
		return 100
	}
	sort.SliceStable(idx, func(a, b int) bool { return order(idx[a]) < order(idx[b]) })
	return idx
}

// writeResults lists the requests' results, identical ones folded into
// one line with their count and the spread of their times.
func writeResults(out io.Writer, results []session.RequestResult) {
	type group struct {
		line  string
		times []time.Duration
	}
	var groups []*group
	byLine := map[string]*group{}
	for _, r := range results {
		var line string
		switch {
		case r.Interrupted:
			line = fmt.Sprintf("  %-24s interrupted (pftap was stopped): %v", r.What, r.Err)
		case r.Err != nil:
			line = fmt.Sprintf("  %-24s FAILED: %v", r.What, r.Err)
		default:
			line = fmt.Sprintf("  %-24s %s, %d bytes", r.What, r.Status, r.Bytes)
		}
		g := byLine[line]
		if g == nil {
			g = &group{line: line}
			byLine[line] = g
			groups = append(groups, g)
		}
		g.times = append(g.times, r.Took)
	}
	for _, g := range groups {
		if len(g.times) == 1 {
			fmt.Fprintf(out, "%s, %s\n", g.line, g.times[0].Round(time.Microsecond))
			continue
		}
		sp := timeline.NewSpread(g.times)
		fmt.Fprintf(out, "%s: %d×, %s p50, %s max\n", g.line, len(g.times), sp.P50.Round(time.Microsecond), sp.Max.Round(time.Microsecond))
	}
}

// writeAppLog lists the app's log, identical requests folded into one
// line with their count.
func writeAppLog(out io.Writer, log []session.AppRequest) {
	type group struct {
		line, from string
		n          int
		remotes    map[string]bool
	}
	var groups []*group
	byLine := map[string]*group{}
	for _, a := range log {
		line := fmt.Sprintf("%s %s, %d bytes", a.Method, a.Path, a.Bytes)
		g := byLine[line]
		if g == nil {
			g = &group{line: line, from: a.Remote, remotes: map[string]bool{}}
			byLine[line] = g
			groups = append(groups, g)
		}
		g.n++
		g.remotes[a.Remote] = true
	}
	for _, g := range groups {
		if g.n == 1 {
			fmt.Fprintf(out, "  from %-21s %s\n", g.from, g.line)
			continue
		}
		fmt.Fprintf(out, "  %s: %d×, from %s\n", g.line, g.n, plural(len(g.remotes), "connection"))
	}
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
