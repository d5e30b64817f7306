package report

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/leg"
	"github.com/pftap/pftap/session"
	"github.com/pftap/pftap/timeline"
)

// Options are the output choices of a rendered session, live (`pftap
// lab`) or replayed (`pftap replay`).
type Options struct {
	// Out receives the text or the JSON lines; Color paints the text
	// (a terminal's).
	Out   io.Writer
	Color bool
	JSON  bool
	// HTML is a file for the sequence diagram ("": none).
	HTML string
	// Title heads the HTML page.
	Title string
	// PerRequest lists every request's hops (timeline.TextWriter).
	PerRequest bool
}

// View is a whole session to render: its legs, its decoding, and what
// the lab knew about it.
type View struct {
	// Legs are the legs' names and LegIDs their places in the chain, by
	// interface index.
	Legs   []string
	LegIDs []leg.ID
	Drops  []uint64 // per leg
	// Decode decodes the session, handing every event to emit in time
	// order (labrun.Lab.Events, session.File.Decode).
	Decode  func(emit func(*decode.Event)) (session.Decoded, error)
	Info    session.Description
	Results []session.RequestResult
	// FailOnResults makes a failed request an error (live runs).
	FailOnResults bool
	// After, when set, runs once every packet has been read: a live
	// session completes the view there (results, the app's log, drops).
	After func()
}

// Session prints a session, live (pftap lab) or recorded (pftap replay):
// the header, the timeline, the per-hop latencies, the requests,
// the legs, the witness, the app's log and the client's words, the
// diagnosis and the totals.
func Session(opts Options, v *View) error {
	info := v.Info
	var sink timeline.Sink
	var tw *timeline.TextWriter
	var jw *timeline.JSONWriter
	if opts.JSON {
		jw = timeline.NewJSONWriter(opts.Out)
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
		tw = timeline.NewTextWriter(opts.Out, opts.Color)
		tw.PerRequest = opts.PerRequest
		tw.FitLegs = true
		sink = tw
		fmt.Fprintln(opts.Out, info.Header)
	}
	hasL3, hasL4 := false, false
	for _, id := range v.LegIDs {
		hasL3, hasL4 = hasL3 || id == leg.L3, hasL4 || id == leg.L4
	}
	an := timeline.NewAnalysis(timeline.AnalysisOptions{KeepEvents: opts.HTML != "", NoRuntime: hasL4 && !hasL3})
	dec, readErr := v.Decode(func(e *decode.Event) {
		an.Note(e)
		sink.Event(e)
	})
	if v.After != nil {
		v.After()
	}
	info = v.Info // a live session's app log arrives with its end
	// The TLS leg (L2 on the wire) is placed on each request's path by its
	// records' times.
	res := an.Result(timeline.Decoded{Summary: dec.Summary, Correlator: dec.Correlator, Records: dec.Records, Legs: len(v.Legs)})
	sink.Hops(res.Hops)
	if opts.HTML != "" {
		// The scenario: who forwarded through which chain, and its era
		// (the header's first lines).
		lines := strings.SplitN(strings.TrimSpace(info.Header), "\n", 3)
		for i := range lines {
			lines[i] = strings.TrimSpace(lines[i])
		}
		scenario := strings.Join(lines[:min(2, len(lines))], ". ")
		if err := WriteHTMLFile(opts.HTML, timeline.HTMLPage{Title: opts.Title, Scenario: scenario}, res.Events, res.Hops); err != nil {
			return err
		}
	}
	rows := timeline.LegRows(res.Summary, v.Legs, v.LegIDs, v.Drops)
	client := info.Client
	if client == "" {
		client = session.Kubectl // recordings from before Client
	}
	if tw != nil {
		out := opts.Out
		if len(v.Results) > 0 {
			fmt.Fprintln(out, "\nrequests sent through the port-forward's local port:")
		}
		writeResults(out, v.Results)
		tw.LegsTable(rows, 0)
		writeWitness(out, rows, info.PodNetns)
		if len(info.AppLog) > 0 {
			fmt.Fprintf(out, "\nthe app in the pod served %s (its own log):\n", plural(len(info.AppLog), "request"))
			writeAppLog(out, info.AppLog)
		}
		if len(info.ClientLog) > 0 {
			if client == session.Kubectl {
				fmt.Fprintf(out, "\nkubectl printed:\n")
			} else {
				fmt.Fprintf(out, "\npftap's port-forward client (client-go) reported:\n")
			}
			for _, line := range info.ClientLog {
				fmt.Fprintf(out, "  %s\n", line)
			}
		}
	} else {
		for _, r := range v.Results {
			o := map[string]any{"kind": "result", "what": r.What, "status": r.Status, "bytes": r.Bytes, "took_ns": r.Took}
			if r.Err != nil {
				o["error"] = r.Err.Error()
			}
			if r.Interrupted {
				o["interrupted"] = true
			}
			jw.Object(o)
		}
		jw.Legs(rows, 0)
		for _, a := range info.AppLog {
			jw.Object(map[string]any{"kind": "app", "ts": a.Time, "remote": a.Remote, "method": a.Method, "path": a.Path, "bytes": a.Bytes})
		}
		for _, line := range info.ClientLog {
			jw.Object(map[string]any{"kind": "client_log", "client": client, "line": line})
		}
	}
	if r := info.Routed; r != nil {
		if tw != nil {
			fmt.Fprintf(opts.Out, "\n%s\n", r.Says("the lab's session"))
		} else {
			jw.Object(struct {
				Kind string `json:"kind"`
				session.Routed
			}{"apiserver_routed", *r})
		}
	}
	sink.Diagnoses(res.Findings)
	sink.Summary(res.Summary)
	if err := sink.Err(); err != nil {
		return err
	}
	if readErr != nil {
		return readErr
	}
	if v.FailOnResults {
		if err := resultsError(v.Results, res); err != nil {
			return err
		}
	}
	// As pftap decode: bytes that break the protocol fail the command.
	if res.Summary.DecodeErrors > 0 {
		return fmt.Errorf("%d decode errors; first: %s", res.Summary.DecodeErrors, res.Summary.FirstError)
	}
	return nil
}

// resultsError is what a live session's last line says of its requests:
// stopped by the user (said as such, no fault), or failed, with the
// session's diagnosis.
func resultsError(results []session.RequestResult, res timeline.AnalysisResult) error {
	var cut []string
	for _, r := range results {
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
	why := res.FirstDiagnosis
	if len(res.Findings) > 0 {
		// The last line restates the session's diagnosis.
		why = res.Findings[0].Text
	}
	for _, r := range results {
		if r.Err != nil {
			if why != "" {
				return fmt.Errorf("a request through the port-forward failed: %s: %s", r.What, why)
			}
			return fmt.Errorf("a request through the port-forward failed: %s: %v", r.What, r.Err)
		}
	}
	return nil
}

// writeWitness says why tcpdump on the pod's eth0 shows nothing, from the
// witness's and the pod's lo's counts, when the witness was captured.
func writeWitness(out io.Writer, rows []timeline.LegRow, podNetns string) {
	eth0, lo, witness := 0, 0, false
	for _, r := range rows {
		switch r.ID {
		case leg.Witness:
			eth0, witness = r.Summary.Packets, true
		case leg.L4:
			lo += r.Summary.Packets
		}
	}
	if !witness {
		return
	}
	if podNetns == "" {
		podNetns = "POD-NETNS"
	}
	fmt.Fprintf(out, "\nwhy tcpdump on the pod's eth0 shows nothing: eth0 saw %d packets of this traffic, the pod's lo %d.\n", eth0, lo)
	fmt.Fprintf(out, "  The runtime does not reach the app through the pod's network: it enters the pod's network\n"+
		"  namespace and connects to localhost, so the forwarded bytes cross only the pod's loopback.\n"+
		"  To see them, capture lo inside the pod's namespace: pftap capture --netns %s -i lo\n", podNetns)
}

// plural is n and what it counts: "1 request", "3 requests".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
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
