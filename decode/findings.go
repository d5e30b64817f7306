package decode

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pftap/pftap/internal/preview"
	"github.com/pftap/pftap/leg"
)

// A Finding is one port-forward failure named from the wire, for a whole
// session: what failed, at which hop, the frames that show it, and what
// to do. The Diagnoser makes them from the events of any set of legs;
// decode, replay, lab and trace print the same ones.
type Finding struct {
	// Name is a stable identifier: "refused", "sandbox-gone",
	// "forbidden", "websocket-refused", "stream-unanswered",
	// "stream-eof", "runtime-died", "client-reset", "idle-dropped",
	// "upgrade-stripped", "unauthorized", "not-found", "kubelet-unreachable",
	// "scheme-mismatch", "https-proxy", "proxy-refused".
	Name string `json:"name"`
	// Hop is where it happened, as a leg's name ("L4 runtime→app") or a
	// component ("the kubelet").
	Hop string `json:"hop"`
	// Leg is the leg of the chain it was seen on, when one is (the
	// deepest, where several show it).
	Leg leg.ID `json:"leg_id,omitempty"`
	// Text is the one line; Explanation says why, with what to do.
	Text        string `json:"text"`
	Explanation string `json:"explanation,omitempty"`
	// RequestID is the port-forward request it concerns, if one.
	RequestID string `json:"request_id,omitempty"`
	// Evidence are the events that show it, in time order.
	Evidence []Evidence `json:"evidence"`
}

// Evidence is one event behind a finding.
type Evidence struct {
	Time time.Time `json:"ts"`
	Leg  string    `json:"leg"`
	Text string    `json:"text"`
}

// Diagnoser collects the events of a session and names its failures.
// Note every event (in any order of legs), then call Findings.
type Diagnoser struct {
	// Captured is how many legs the session captured (0: as many as
	// had events): with one, a finding says what it cannot tell.
	Captured int
	legs     map[leg.ID]string // the legs seen, by ID → name
	order    []leg.ID
	errs     []*Event // error-stream texts
	status   []*Event // failed upgrades (HTTP responses ≥ 300)
	upgraded []*Event // 101s
	pending  map[streamKey]*Event
	byReq    map[reqKey][]streamKey // the pending streams of each request
	closed   map[connKey][]*Event   // closes of connections
	last     map[connKey]time.Time
	pings    map[connKey]int
	replies  map[streamKey]bool
	reqs     []*Event           // requests that did not end well
	resets   []*Event           // user-leg RSTs and RST_STREAMs
	tlsFrom  map[connKey]*Event // the first TLS record a client sent
	connects []*Event           // CONNECT requests
	tunnels  []*Event           // the answers to them
	upgrades []*Event           // port-forward upgrade requests on L1
	local    []Evidence         // the client's own errors on its local connections
	firstT   time.Time
	lastT    time.Time
}

type connKey struct {
	leg  string
	conn int
}

type streamKey struct {
	connKey
	stream uint32
}

type reqKey struct {
	connKey
	id string
}

// NewDiagnoser returns an empty Diagnoser.
func NewDiagnoser() *Diagnoser {
	return &Diagnoser{legs: map[leg.ID]string{}, pending: map[streamKey]*Event{}, byReq: map[reqKey][]streamKey{}, closed: map[connKey][]*Event{},
		last: map[connKey]time.Time{}, pings: map[connKey]int{}, replies: map[streamKey]bool{}, tlsFrom: map[connKey]*Event{}}
}

// NoteClient takes one error line the port-forward client reported at t
// (client names it: "kubectl", "pftap"), as client-go words them. What
// it says of its local connections (a reset, a broken pipe) is evidence
// no tapped leg may hold: the local leg is not tapped by trace.
func (d *Diagnoser) NoteClient(t time.Time, client, line string) {
	l := strings.ToLower(line)
	if !strings.Contains(l, "copying from local connection to remote stream") && !strings.Contains(l, "copying from remote stream to local connection") {
		return
	}
	if !strings.Contains(l, "connection reset by peer") && !strings.Contains(l, "broken pipe") {
		return
	}
	d.local = append(d.local, Evidence{Time: t, Leg: "client-go (" + client + ")", Text: "says " + preview.Text(line, 200)})
}

// Note takes one event.
func (d *Diagnoser) Note(e *Event) {
	if e == nil || e.Kind == KindWS || e.Kind == KindTCP {
		return
	}
	if e.Kind == KindWarning && e.Type == WarnTLSToPlain || e.Kind == KindSPDY && e.Type == "TLS" && e.Dir == ToServer {
		// TLS where a plain-HTTP server answers: the scheme is wrong.
		if ck := (connKey{e.Leg, e.Conn}); d.tlsFrom[ck] == nil {
			d.tlsFrom[ck] = e
		}
		return
	}
	if e.Kind == KindSPDY {
		// Frames (-v): only what stream creation needs.
		if e.Type != "SYN_REPLY" || e.Stream == nil {
			return
		}
		sk := streamKey{connKey{e.Leg, e.Conn}, *e.Stream}
		d.replies[sk] = true
		delete(d.pending, sk)
		return
	}
	if d.firstT.IsZero() || e.Time.Before(d.firstT) {
		d.firstT = e.Time
	}
	if e.Time.After(d.lastT) {
		d.lastT = e.Time
	}
	if _, ok := d.legs[e.LegID]; !ok && e.Leg != "" {
		d.legs[e.LegID] = e.Leg
		d.order = append(d.order, e.LegID)
	}
	ck := connKey{e.Leg, e.Conn}
	if e.Kind != KindClose && e.Kind != KindRequest && e.Kind != KindWarning {
		// What crossed the connection (a request's end is a summary).
		d.last[ck] = e.Time
	}
	switch e.Kind {
	case KindStreamError:
		d.errs = append(d.errs, e)
	case KindHTTPRequest:
		if e.Method == "CONNECT" {
			d.connects = append(d.connects, e)
		} else if e.LegID == leg.L1 && e.HTTPHeader["upgrade"] != "" {
			d.upgrades = append(d.upgrades, e)
		}
	case KindHTTPResponse:
		if strings.HasPrefix(e.Protocol, "tunnel") {
			d.tunnels = append(d.tunnels, e)
			return
		}
		if e.Status >= 300 {
			d.status = append(d.status, e)
		}
		if e.Status == 101 {
			d.upgraded = append(d.upgraded, e)
		}
	case KindStream:
		if e.Stream == nil {
			return
		}
		sk := streamKey{ck, *e.Stream}
		switch e.Type {
		case "SYN_STREAM":
			if !d.replies[sk] {
				d.pending[sk] = e
				if e.RequestID != nil {
					rk := reqKey{ck, *e.RequestID}
					d.byReq[rk] = append(d.byReq[rk], sk)
				}
			}
		case "SYN_REPLY":
			d.replies[sk] = true
			delete(d.pending, sk)
		case "RST_STREAM":
			delete(d.pending, sk)
			d.resets = append(d.resets, e)
		}
	case KindPing:
		d.pings[ck]++
	case KindGoAway, KindClose:
		d.closed[ck] = append(d.closed[ck], e)
		// The user's reset, not the forward's (kubectl exiting resets
		// the local connections it still holds).
		if e.Kind == KindClose && e.LegID == leg.User && e.Reason == "RST" && e.ResetBy != FromServer {
			d.resets = append(d.resets, e)
		}
	case KindRequest:
		// Its streams were accepted (SYN_REPLY seen) when it has a setup
		// time: no frame events needed for that.
		if e.SetupNS != nil && e.RequestID != nil {
			rk := reqKey{ck, *e.RequestID}
			for _, sk := range d.byReq[rk] {
				delete(d.pending, sk)
			}
			delete(d.byReq, rk)
		}
		if e.Error != nil || strings.Contains(e.Text, "unfinished") || strings.Contains(e.Text, "FAILED") {
			d.reqs = append(d.reqs, e)
		}
	}
}

// WarnTLSToPlain is the Type of the warning the decoder gives when a
// server answers a client's TLS in plain HTTP.
const WarnTLSToPlain = "tls-to-plain"

// IdleDrop is how long a connection must have carried nothing before a
// reset of it is taken for a middlebox's idle timeout (ELB: 60 s; the
// lab's middlebox: a few seconds).
const IdleDrop = 2 * time.Second

// StreamTimeout is client-go's wait for a stream's SYN_REPLY.
const StreamTimeout = 30 * time.Second

// Findings names what failed in the session noted so far.
func (d *Diagnoser) Findings() []Finding {
	var out []Finding
	streams := d.errorStreams()
	out = append(out, d.schemeMismatch()...)
	out = append(out, d.proxied()...)
	out = append(out, d.statuses()...)
	unanswered := d.unanswered()
	// The node's "timed out waiting for streams" is the other end of a
	// stream never answered: one finding, with both.
	for _, f := range streams {
		merged := false
		for i := range unanswered {
			if f.Name == "streams-timeout" && unanswered[i].RequestID == f.RequestID {
				unanswered[i].Evidence = append(unanswered[i].Evidence, f.Evidence...)
				sort.SliceStable(unanswered[i].Evidence, func(a, b int) bool { return unanswered[i].Evidence[a].Time.Before(unanswered[i].Evidence[b].Time) })
				unanswered[i].Explanation += "; the node wrote \"timed out waiting for streams\" on the error stream when its own wait ran out"
				merged = true
			}
		}
		if !merged {
			out = append(out, f)
		}
	}
	died := d.runtimeDied()
	// A runtime that dies with streams waiting for their replies: the
	// waiting streams' EOF is the death's symptom, one finding with both.
	for i := range unanswered {
		if len(died) == 1 && unanswered[i].Name == "stream-eof" && unanswered[i].Leg == leg.L3 {
			unanswered[i].Text = "stream creation ended in EOF: the runtime's streaming server died while the stream waited for its reply"
			unanswered[i].Explanation += "; " + died[0].Text + ": " + died[0].Explanation
			unanswered[i].Evidence = mergeEvidence(unanswered[i].Evidence, died[0].Evidence)
			died = nil
		}
	}
	out = append(out, unanswered...)
	out = append(out, died...)
	out = append(out, d.clientReset()...)
	if len(out) == 0 {
		// A quiet connection reset is the cause only when nothing else is.
		out = append(out, d.idle()...)
	}
	captured := d.Captured
	if captured == 0 {
		captured = len(d.order)
	}
	if len(out) > 0 && captured == 1 && len(d.order) == 1 {
		only := d.legs[d.order[0]]
		for i := range out {
			out[i].Explanation += fmt.Sprintf(" (only %s was captured: what happened beyond it is told by what came back on it, not seen)", only)
		}
	}
	return out
}

// mergeEvidence adds b's evidence not already in a, in time order.
func mergeEvidence(a, b []Evidence) []Evidence {
	for _, e := range b {
		if !slices.Contains(a, e) {
			a = append(a, e)
		}
	}
	sort.SliceStable(a, func(i, j int) bool { return a[i].Time.Before(a[j].Time) })
	return a
}

// proxied: the client's CONNECT through its proxy. One below an HTTPS
// proxy's TLS (the proxy leg) is named whatever came of it, for which
// upgrade got through it says whether the client's WebSocket dialer could
// use an https:// proxy; a refused CONNECT on any leg is a failure.
func (d *Diagnoser) proxied() []Finding {
	for _, t := range d.tunnels {
		if t.Status/100 == 2 {
			continue
		}
		f := Finding{Name: "proxy-refused", Hop: "the client's proxy, seen on " + t.Leg, Leg: t.LegID,
			Text:        fmt.Sprintf("the proxy refused the CONNECT to the apiserver (%d)", t.Status),
			Explanation: fmt.Sprintf("the client's proxy answered %s instead of opening the tunnel: nothing reached the apiserver", t.Text),
			Evidence:    evidence(t)}
		switch t.Status {
		case 407:
			f.Explanation += "; it wants credentials: put them in the proxy URL (https://user:password@proxy:port) or in HTTPS_PROXY"
		case 403:
			f.Explanation += "; its rules forbid the apiserver's address: allow it, or leave the apiserver out of the proxy (NO_PROXY)"
		}
		for _, c := range d.connects {
			if c.Leg == t.Leg && c.Conn == t.Conn {
				f.Evidence = evidence(c, t)
			}
		}
		return []Finding{f}
	}
	var connect *Event
	for _, c := range d.connects {
		if c.LegID == leg.Proxy {
			connect = c
			break
		}
	}
	if connect == nil {
		return nil
	}
	ws, spdyOnly := false, len(d.upgrades) > 0
	var ua string
	for _, u := range d.upgrades {
		if strings.EqualFold(u.HTTPHeader["upgrade"], "websocket") {
			ws, spdyOnly = true, false
		}
		ua = u.HTTPHeader["user-agent"]
	}
	f := Finding{Name: "https-proxy", Hop: "the client's HTTPS proxy (" + connect.Leg + ")", Leg: connect.LegID,
		Evidence: evidence(connect)}
	for _, t := range d.tunnels {
		if t.Leg == connect.Leg && t.Conn == connect.Conn {
			f.Evidence = evidence(connect, t)
		}
	}
	if len(d.upgrades) > 0 {
		f.Evidence = mergeEvidence(f.Evidence, evidence(d.upgrades[len(d.upgrades)-1]))
	}
	const why = "the WebSocket dialer of older client-go builds (gorilla/websocket; kubectl 1.32's, for one) cannot use an https:// proxy: it fails with \"proxy: unknown scheme: https\" before sending a byte"
	switch {
	case spdyOnly:
		f.Text = "the client went through an HTTPS proxy and upgraded to SPDY/3.1: its WebSocket never reached the proxy"
		f.Explanation = why + "; client-go 1.30 and later then fall back to SPDY/3.1, as here (" + ua + "), and older ones stop there. Use an http:// proxy URL, or a newer kubectl (1.37 takes https proxies)"
	case ws:
		f.Text = "the client went through an HTTPS proxy (CONNECT inside TLS, the apiserver's TLS inside that), and its WebSocket got through"
		f.Explanation = "this client's WebSocket dialer takes https:// proxies (kubectl 1.37's does); older builds (kubectl 1.32's) fail with \"proxy: unknown scheme: https\" and fall back to SPDY/3.1 (client-go 1.30 and later) or stop"
	default:
		f.Text = "the client went through an HTTPS proxy (CONNECT inside TLS, the apiserver's TLS inside that)"
		f.Explanation = why + "; no port-forward upgrade was seen on L1"
	}
	return []Finding{f}
}

// schemeMismatch: a client that opened TLS on a connection whose server
// answered in plain HTTP (its 400 to the ClientHello). The URL said
// https for a plain-HTTP server: the hops above report the TLS error.
// The statuses it explains are taken out of d.status.
func (d *Diagnoser) schemeMismatch() []Finding {
	var hello, answer *Event
	for _, e := range d.status {
		if t := d.tlsFrom[connKey{e.Leg, e.Conn}]; t != nil && e.Kind == KindHTTPResponse {
			hello, answer = t, e
			break
		}
	}
	if answer == nil {
		return d.schemeMismatchReported()
	}
	f := Finding{Name: "scheme-mismatch", Hop: answer.Leg, Leg: answer.LegID,
		Text:        fmt.Sprintf("TLS sent to a plain-HTTP server on %s: the URL says https, the server speaks HTTP", answer.Leg),
		Explanation: fmt.Sprintf("the client of %s began with a TLS ClientHello and the server answered it in plain HTTP (%d): the URL it was given has the wrong scheme. On L3 this is the runtime's streaming URL (the CRI PortForward answer) saying https for a plain streaming server, or the runtime's TLS turned off; Go's TLS client reports \"tls: first record does not look like a TLS handshake\", its HTTP client \"http: server gave HTTP response to HTTPS client\", and the hops above pass that on as a 500", answer.Leg, answer.Status)}
	var kept, because []*Event
	for _, e := range d.status {
		low := strings.ToLower(e.Text + " " + e.Body)
		if e == answer || d.tlsFrom[connKey{e.Leg, e.Conn}] != nil && e.Status == answer.Status ||
			slices.ContainsFunc(tlsToPlainWords, func(w string) bool { return strings.Contains(low, w) }) {
			because = append(because, e)
			continue
		}
		kept = append(kept, e)
	}
	d.status = kept
	f.Evidence = evidence(append([]*Event{hello}, because...)...)
	return []Finding{f}
}

// tlsToPlainWords are how Go's TLS and HTTP clients report a plain-HTTP
// answer to their TLS.
var tlsToPlainWords = []string{"does not look like a tls handshake", "http response to https client"}

// schemeMismatchReported: the same failure told by the hops above the one
// where it happened (their 500s carry the dialer's words), when that hop
// was not captured.
func (d *Diagnoser) schemeMismatchReported() []Finding {
	var same, kept []*Event
	for _, e := range d.status {
		low := strings.ToLower(e.Text + " " + e.Body)
		if slices.ContainsFunc(tlsToPlainWords, func(w string) bool { return strings.Contains(low, w) }) {
			same = append(same, e)
			continue
		}
		kept = append(kept, e)
	}
	if len(same) == 0 {
		return nil
	}
	d.status = kept
	dp := deepest(same)
	hop := "the apiserver's dial to the kubelet, or the kubelet's to the runtime (seen on " + dp.Leg + ")"
	if dp.LegID == leg.L2 {
		hop = "the kubelet's dial to the runtime's streaming server (seen on " + dp.Leg + ")"
	}
	return []Finding{{Name: "scheme-mismatch", Hop: hop, Leg: dp.LegID,
		Text:        "a hop opened TLS to a server that answered in plain HTTP: a URL says https for a plain-HTTP server",
		Explanation: "the 500 carries the dialer's own words (\"tls: first record does not look like a TLS handshake\" or \"http: server gave HTTP response to HTTPS client\"): the hop below was given an https URL for a server that speaks plain HTTP; on a node it is the runtime's streaming URL (the CRI PortForward answer) with the wrong scheme, or the runtime's TLS turned off",
		Evidence:    evidence(same...)}}
}

// deepest returns the event of es on the leg furthest along the chain.
func deepest(es []*Event) *Event {
	var best *Event
	for _, e := range es {
		if best == nil || e.LegID.Order() > best.LegID.Order() {
			best = e
		}
	}
	return best
}

func evidence(es ...*Event) []Evidence {
	var out []Evidence
	for _, e := range es {
		if e != nil {
			out = append(out, Evidence{Time: e.Time, Leg: e.Leg, Text: e.Text})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// errorStreams: what a kubelet or runtime wrote on an error stream, one
// finding per request (the deepest leg's copy is the runtime's own).
func (d *Diagnoser) errorStreams() []Finding {
	byReq := map[string][]*Event{}
	var ids []string
	for _, e := range d.errs {
		id := ""
		if e.RequestID != nil {
			id = *e.RequestID
		}
		if _, ok := byReq[id]; !ok {
			ids = append(ids, id)
		}
		byReq[id] = append(byReq[id], e)
	}
	var out []Finding
	for _, id := range ids {
		es := byReq[id]
		e := deepest(es)
		msg := e.Text
		if e.Error != nil {
			msg = *e.Error
		}
		expl := DiagnoseStreamError(msg)
		low := strings.ToLower(msg)
		f := Finding{RequestID: id, Explanation: expl, Evidence: evidence(es...)}
		switch {
		case strings.Contains(low, "connection refused"):
			f.Name, f.Hop = "refused", d.legName(leg.L4, "the runtime's dial to localhost inside the pod")
			if _, ok := d.legs[leg.L4]; ok {
				f.Leg = leg.L4
			}
			f.Text = "the app refused the runtime's connection inside the pod"
			// A session that saw what listened in the pod (trace's agent)
			// sharpened the event's diagnosis: the app on the pod's IP
			// only, or nothing on that port.
			for _, x := range es {
				if x.Diagnosis != "" && x.Diagnosis != expl {
					f.Explanation = x.Diagnosis
					if strings.Contains(x.Diagnosis, "the pod's IP only") {
						f.Text = "the app listens on the pod's IP only: the runtime's dial to localhost inside the pod was refused"
					}
				}
			}
			// The refusal itself, when L4 was captured: SYN answered by RST.
			for _, cl := range d.closed {
				for _, c := range cl {
					if c.LegID == leg.L4 && (c.Reason == "RST" || c.Reason == "refused") {
						f.Evidence = append(f.Evidence, evidence(c)...)
					}
				}
			}
		case strings.Contains(low, "timed out waiting for streams"):
			f.Name, f.Hop, f.Leg = "streams-timeout", e.Leg, e.LegID
			f.Text = "the node gave up waiting for the request's other stream"
		case strings.Contains(low, "sandbox") || strings.Contains(low, "no such container") || strings.Contains(low, "container not found"):
			f.Name, f.Hop = "sandbox-gone", "the runtime"
			f.Text = "the pod's sandbox is gone: the pod was deleted or restarted under the forward"
		default:
			f.Name, f.Hop = "error-stream", "the kubelet or runtime"
			f.Text = "the node reported an error on the error stream"
		}
		if expl == "" {
			f.Explanation = "the node's own words: " + msg
		}
		sort.SliceStable(f.Evidence, func(i, j int) bool { return f.Evidence[i].Time.Before(f.Evidence[j].Time) })
		out = append(out, f)
	}
	return out
}

// statuses: an upgrade answered with a failure.
func (d *Diagnoser) statuses() []Finding {
	var out []Finding
	seen := map[int]bool{}
	for _, e := range d.status {
		if seen[e.Status] {
			continue
		}
		seen[e.Status] = true
		// Every leg's copy of the same failure.
		var same []*Event
		for _, o := range d.status {
			if o.Status == e.Status {
				same = append(same, o)
			}
		}
		dp := deepest(same)
		f := Finding{Leg: dp.LegID, Explanation: diagnoseStatus(e.Status, e.Text+" "+e.Body), Evidence: evidence(same...)}
		low := strings.ToLower(e.Text + " " + e.Body)
		switch {
		case e.Status == 400 && strings.Contains(low, "port") && strings.Contains(low, "required"):
			f.Name, f.Hop, f.Text = "websocket-refused", "the kubelet, seen on "+dp.Leg, "the kubelet refused the WebSocket tunnel (400)"
		case e.Status == 403:
			f.Name, f.Hop, f.Text = "forbidden", "the apiserver, seen on "+dp.Leg, "the apiserver forbade the port-forward (403)"
		case e.Status == 401:
			f.Name, f.Hop, f.Text = "unauthorized", "the apiserver, seen on "+dp.Leg, "the apiserver did not accept the credentials (401)"
		case e.Status == 404:
			f.Name, f.Hop, f.Text = "not-found", dp.Leg, "the pod or its port-forward was not found (404)"
		case e.Status == 502 || e.Status == 503:
			f.Name, f.Hop, f.Text = "kubelet-unreachable", "the apiserver, seen on "+dp.Leg, fmt.Sprintf("the apiserver could not reach the kubelet (%d)", e.Status)
		case e.Status == 400 || e.Status == 426:
			f.Name, f.Hop, f.Text = "upgrade-refused", dp.Leg, fmt.Sprintf("the upgrade was refused (%d)", e.Status)
			if strings.Contains(low, "upgrade request required") || strings.Contains(low, "upgrade required") {
				f.Name, f.Text = "upgrade-stripped", "something between the client and the server passed the request without its upgrade"
				f.Explanation = "the upgrade headers did not reach the server that answered: a proxy or gateway in the way strips Connection/Upgrade; port-forward needs it to pass upgrades (SPDY/3.1 or WebSocket) through"
			}
		default:
			f.Name, f.Hop, f.Text = "upgrade-failed", dp.Leg, fmt.Sprintf("the upgrade failed (%d)", e.Status)
		}
		if f.Explanation == "" {
			f.Explanation = e.Text
		}
		// A refused WebSocket followed by a working SPDY upgrade on the
		// same leg: the client fell back, and the forward worked.
		if e.Status == 400 && (f.Name == "websocket-refused" || f.Name == "upgrade-refused") {
			onLeg := map[string]bool{}
			for _, o := range same {
				onLeg[o.Leg] = true
			}
			for _, u := range d.upgraded {
				if onLeg[u.Leg] && u.Time.After(e.Time) && strings.Contains(u.Text, "SPDY") && !strings.Contains(u.Text, "WebSocket") {
					f.Name = "websocket-fallback"
					f.Text += "; the client fell back to SPDY/3.1, which worked"
					f.Evidence = append(f.Evidence, evidence(u)...)
					break
				}
			}
		}
		out = append(out, f)
	}
	return out
}

// unanswered: SYN_STREAMs that never got their SYN_REPLY. If their
// connection closed meanwhile, stream creation failed with EOF; if not,
// it timed out (client-go waits 30 s).
func (d *Diagnoser) unanswered() []Finding {
	type group struct {
		first *Event
		all   []*Event
	}
	byReq := map[string]*group{}
	var ids []string
	for _, e := range d.pending {
		id := ""
		if e.RequestID != nil {
			id = *e.RequestID
		}
		g := byReq[id]
		if g == nil {
			g = &group{}
			byReq[id] = g
			ids = append(ids, id)
		}
		g.all = append(g.all, e)
	}
	sort.Strings(ids)
	var out []Finding
	for _, id := range ids {
		g := byReq[id]
		dp := deepest(g.all)
		ck := connKey{dp.Leg, dp.Conn}
		// The server's side ending first is an EOF; the client's (its
		// GOAWAY, its FIN) is the client giving up on a stream that
		// was never answered.
		var closer, gaveUp *Event
		for _, c := range d.closed[ck] {
			if c.Time.Before(dp.Time) {
				continue
			}
			if c.Dir == FromServer || (c.Kind == KindClose && c.Reason == "RST") {
				if gaveUp == nil {
					closer = c
				}
				break
			}
			if gaveUp == nil {
				gaveUp = c
			}
		}
		f := Finding{RequestID: id, Leg: dp.LegID, Evidence: evidence(g.all...)}
		if closer != nil {
			f.Name, f.Hop = "stream-eof", dp.Leg
			f.Text = "stream creation ended in EOF: the connection closed while the stream waited for its reply"
			f.Explanation = fmt.Sprintf("the SYN_STREAM reached %s and no SYN_REPLY came before %s (%s after it): the side that closed gave up or died; client-go says \"error creating ... stream: EOF\" for a stream it opens on the closed connection, and \"lost connection to pod\" once the close reaches it",
				dp.Leg, closer.Text, closer.Time.Sub(dp.Time).Round(time.Millisecond))
			f.Evidence = append(f.Evidence, evidence(closer)...)
		} else {
			waited := d.lastT.Sub(dp.Time)
			if gaveUp != nil {
				waited = gaveUp.Time.Sub(dp.Time)
				f.Evidence = append(f.Evidence, evidence(gaveUp)...)
			}
			f.Name, f.Hop = "stream-unanswered", dp.Leg
			f.Text = fmt.Sprintf("stream creation unanswered for %s: the SYN_STREAM stops at %s", waited.Round(time.Millisecond), dp.Leg)
			f.Explanation = fmt.Sprintf("the last hop that got the SYN_STREAM (%s) never answered it; client-go gives up after %s (\"Timeout occurred\"); a runtime in this state usually recovers when restarted", dp.Leg, StreamTimeout)
		}
		out = append(out, f)
	}
	return out
}

// runtimeDied: an L3 connection closed by the runtime's side while the
// forward still ran (before the kubelet said GOAWAY or closed its side):
// the runtime's streaming server went away under it.
func (d *Diagnoser) runtimeDied() []Finding {
	var cut []*Event
	conns := 0
	failed := map[connKey]bool{}
	for _, e := range d.status {
		failed[connKey{e.Leg, e.Conn}] = true
	}
	for ck := range d.tlsFrom {
		failed[ck] = true
	}
	for ck, cl := range d.closed {
		if failed[ck] {
			// A server closes after it refused: no death.
			continue
		}
		var first *Event
		for _, c := range cl {
			if c.LegID != leg.L3 {
				break
			}
			if first == nil || c.Time.Before(first.Time) {
				first = c
			}
		}
		// An RST ends both directions at once; a kubelet that is done
		// says GOAWAY and closes with a FIN first. An RST the kubelet
		// sent is its own teardown (it closed with bytes unread, as when
		// the hops above went away), not the runtime's death.
		if first == nil || first.Kind != KindClose || first.Reason == "capture ended" || (first.Dir != FromServer && first.Reason != "RST") ||
			first.Reason == "RST" && first.ResetBy == ToServer {
			continue
		}
		conns++
		cut = append(cut, first)
	}
	if len(cut) == 0 {
		return nil
	}
	sort.Slice(cut, func(i, j int) bool { return cut[i].Time.Before(cut[j].Time) })
	f := Finding{Name: "runtime-died", Hop: d.legName(leg.L3, "the runtime's streaming server"), Leg: leg.L3,
		Text:        fmt.Sprintf("the runtime's streaming server closed %d port-forward connection(s) under running forwards", conns),
		Explanation: "the runtime closed its side first, with no GOAWAY or close from the kubelet before it: it crashed or restarted (containerd's streaming server has died this way), and every forward through it on the node is lost; start them again",
		Evidence:    evidence(cut...)}
	if conns > 1 {
		f.Text += fmt.Sprintf(", within %s", cut[len(cut)-1].Time.Sub(cut[0].Time).Round(time.Millisecond))
	}
	// How long the hops above took to learn of it.
	for _, cl := range d.closed {
		for _, c := range cl {
			if c.LegID == leg.L2 && c.Time.After(cut[0].Time) {
				if late := c.Time.Sub(cut[0].Time); late > time.Second {
					f.Explanation += fmt.Sprintf("; the kubelet passed it on only %s later (L2 closed then), when the next ping crossed it", late.Round(100*time.Millisecond))
					f.Evidence = append(f.Evidence, evidence(c)...)
				}
				break
			}
		}
	}
	return []Finding{f}
}

// clientReset: the local client reset its connection, and the forward's
// stream was reset after it.
func (d *Diagnoser) clientReset() []Finding {
	var first *Event
	for _, e := range d.resets {
		if e.Kind != KindClose {
			continue
		}
		if first == nil {
			first = e
		}
		for _, r := range d.resets {
			if r.Kind == KindStream && !r.Time.Before(e.Time) {
				return []Finding{{Name: "client-reset", Hop: e.Leg, Leg: e.LegID,
					Text:        "the local client reset its connection; the forward reset the stream after it",
					Explanation: "kubectl logs \"error copying from local connection to remote stream ... connection reset by peer\" (or, writing to it, \"error copying from remote stream to local connection ... broken pipe\") and cancels the stream (RST_STREAM CANCEL) on every hop: the failure is the local program's, not the cluster's; the runtime may still read the app's whole answer",
					Evidence:    evidence(e, r)}}
			}
		}
	}
	if first == nil {
		return d.clientResetReported()
	}
	// A reset once the stream was done: no RST_STREAM is needed.
	return []Finding{{Name: "client-reset", Hop: first.Leg, Leg: first.LegID,
		Text:        "the local client reset its connection instead of closing it",
		Explanation: "kubectl logs \"error copying from local connection to remote stream ... connection reset by peer\"; the stream had already ended, so nothing was cut: the local program aborts its connections (SO_LINGER 0, or killed), not the cluster's doing",
		Evidence:    evidence(first)}}
}

// clientResetReported: no local leg was tapped, but the client said its
// local connection was reset (or its writes to it found a broken pipe).
func (d *Diagnoser) clientResetReported() []Finding {
	if len(d.local) == 0 {
		return nil
	}
	first := d.local[0]
	ev := []Evidence{first}
	text := "the local client reset its connection (the port-forward client says so)"
	why := "the program using the forwarded local port aborted its connection (a cancelled download, a killed program, SO_LINGER 0): the failure is the local program's, not the cluster's; the local leg is not tapped, so this is the client's own word for it (its read or write on the local connection failed)"
	reset, reqID := false, ""
	for _, r := range d.resets {
		if r.Kind == KindStream && !r.Time.Before(first.Time.Add(-time.Second)) {
			ev = append(ev, evidence(r)...)
			text += "; the forward reset the stream after it"
			reset = true
			break
		}
	}
	if !reset {
		// client-go half-closes the data stream when its local copy
		// ends, and its reset after that sends nothing: the pod's
		// answer keeps coming, to be thrown away.
		for _, r := range d.reqs {
			if r.LegID == leg.L1 && r.Time.After(first.Time) && r.BytesFromPod != nil {
				ev = append(ev, evidence(r)...)
				why += fmt.Sprintf("; no RST_STREAM followed (client-go half-closed the data stream first, and a reset after that sends nothing), so the pod's answer kept coming through every hop, to be thrown away: %d bytes of it reached the client on L1", *r.BytesFromPod)
				if r.RequestID != nil {
					reqID = *r.RequestID
				}
				break
			}
		}
	}
	sort.SliceStable(ev, func(i, j int) bool { return ev[i].Time.Before(ev[j].Time) })
	return []Finding{{Name: "client-reset", Hop: "the local connection",
		Text: text, Explanation: why, RequestID: reqID, Evidence: ev}}
}

// idle: a connection closed after carrying nothing for a long time.
func (d *Diagnoser) idle() []Finding {
	var out []Finding
	for ck, cl := range d.closed {
		last, ok := d.last[ck]
		if !ok || len(cl) == 0 {
			continue
		}
		c := cl[0]
		// A peer that is done says GOAWAY or closes with a FIN of its
		// own; a middlebox's idle timeout resets.
		if c.Kind != KindClose || c.Reason != "RST" || c.LegID == leg.User {
			continue
		}
		// The silence is what the connection carried, both ways: its
		// bytes (a TLS leg has no events for them), or, from a source
		// that does not say, its events.
		silence := c.Time.Sub(last)
		if c.IdleNS != nil {
			silence = time.Duration(*c.IdleNS)
		}
		if silence >= IdleDrop {
			quiet := silence.Round(100 * time.Millisecond)
			out = append(out, Finding{Name: "idle-dropped", Hop: ck.leg, Leg: c.LegID,
				Text: fmt.Sprintf("%s was reset after %s of silence", ck.leg, quiet),
				Explanation: fmt.Sprintf("not a byte crossed the connection, either way, for %s (%d pings seen on it; kubectl pings every 5 s on SPDY, 10 s through the WebSocket tunnel), then it was reset: an idle timeout in a load balancer or NAT between the hops (60 s on ELB) drops quiet connections",
					quiet, d.pings[ck]),
				Evidence: evidence(c)})
		}
	}
	if len(out) <= 1 {
		return out
	}
	// One middlebox cuts every connection through it: one finding, at
	// the first cut, with the others as evidence.
	sort.Slice(out, func(i, j int) bool { return out[i].Evidence[0].Time.Before(out[j].Evidence[0].Time) })
	f := out[0]
	for _, o := range out[1:] {
		f.Evidence = append(f.Evidence, o.Evidence...)
	}
	f.Text = fmt.Sprintf("%d connections were reset after a silence", len(out))
	return []Finding{f}
}

// legName is the name of the leg with id as seen, or what to call it.
func (d *Diagnoser) legName(id leg.ID, otherwise string) string {
	if n, ok := d.legs[id]; ok {
		return n
	}
	return otherwise
}

// RefineRefused sharpens the diagnosis of a refused connection inside the
// pod with what listened there (the agent's view, or the lab's): the app bound to the
// pod's IP only, or nothing on that port at all.
func RefineRefused(why string, e *Event, listeners []string) string {
	if e.Error == nil || !strings.Contains(*e.Error, "connection refused") || e.Port == 0 {
		return why
	}
	port := strconv.Itoa(e.Port)
	var elsewhere, ports []string
	seen := map[string]bool{}
	for _, l := range listeners {
		ap, err := netip.ParseAddrPort(l)
		if err != nil {
			continue
		}
		p := strconv.Itoa(int(ap.Port()))
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
		if p != port {
			continue
		}
		a := ap.Addr()
		if a.IsLoopback() || a.IsUnspecified() {
			return why + fmt.Sprintf(" (%s was seen listening: the app had not started yet, or restarted)", l)
		}
		elsewhere = append(elsewhere, l)
	}
	if len(elsewhere) > 0 {
		return fmt.Sprintf("the app listens on %s: the pod's IP only, not localhost; port-forward dials localhost:%s inside the pod, "+
			"so it is refused. Bind the app to 0.0.0.0 (or also to 127.0.0.1)", strings.Join(elsewhere, ", "), port)
	}
	return fmt.Sprintf("nothing listens on port %s in the pod (it listens on: %s): check the port, or whether the app runs", port, strings.Join(ports, ", "))
}
