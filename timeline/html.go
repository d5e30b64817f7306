package timeline

import (
	"fmt"
	"html"
	"io"
	"strings"
	"time"

	"github.com/pftap/pftap/leg"

	"github.com/pftap/pftap/decode"
)

// chainNodes are the columns of the sequence diagram, in chain order, as
// named when the legs do not say better (see laneNames).
var chainNodes = []string{"you (the requests)", "the client", "apiserver", "kubelet", "runtime", "app (pod lo)"}

// laneNames names the columns from the session's legs: the client from
// the user's leg ("user→kubectl"), the runtime from L4's ("L4 socat→app").
func laneNames(events []*decode.Event) []string {
	names := append([]string(nil), chainNodes...)
	for _, e := range events {
		switch e.LegID {
		case leg.User:
			if _, c, ok := strings.Cut(e.Leg, "→"); ok && c != "" {
				names[1] = map[string]string{"pftap": "pftap (its client)"}[c]
				if names[1] == "" {
					names[1] = c
				}
			}
		case leg.L4:
			name := strings.TrimPrefix(e.Leg, "L4 ")
			if r, _, ok := strings.Cut(name, "→"); ok && r != "" {
				names[4] = map[string]string{"runtime": "runtime streaming server", "socat": "socat (nsenter, by the kubelet)"}[r]
				if names[4] == "" {
					names[4] = r
				}
			}
		}
	}
	return names
}

// HTMLPage says what heads a diagram.
type HTMLPage struct {
	Title string
	// Scenario says what ran (the client, the runtime, the era), under
	// the title.
	Scenario string
}

// band is a row of the diagram: one event, or consecutive frames of one
// stream on one leg in one direction folded into one (Folded > 1).
type band struct {
	e      *decode.Event
	folded int
	bytes  int
	last   time.Time
}

// foldable says an event is bulk framing (a SPDY DATA frame or a WebSocket
// data frame), which consecutive ones of a stream fold into one band.
func foldable(e *decode.Event) bool {
	return e.Kind == decode.KindSPDY && e.Type == "DATA" || e.Kind == decode.KindWS && (e.Type == "binary" || e.Type == "text" || e.Type == "continuation")
}

func sameStream(a, b *decode.Event) bool {
	sa, sb := uint32(0), uint32(0)
	if a.Stream != nil {
		sa = *a.Stream
	}
	if b.Stream != nil {
		sb = *b.Stream
	}
	return a.Kind == b.Kind && a.Leg == b.Leg && a.Conn == b.Conn && a.Dir == b.Dir && sa == sb
}

// fold turns the rows into bands.
func fold(rows []*decode.Event) []band {
	var out []band
	for _, e := range rows {
		n := 0
		if e.Length != nil {
			n = *e.Length
		}
		if k := len(out) - 1; k >= 0 && foldable(e) && foldable(out[k].e) && sameStream(out[k].e, e) {
			out[k].folded++
			out[k].bytes += n
			out[k].last = e.Time
			continue
		}
		out = append(out, band{e: e, folded: 1, bytes: n, last: e.Time})
	}
	return out
}

// legSpan places a leg between two columns by its ID. With no L3 in the
// session (the dockershim's socat), L4 runs from the kubelet's column to
// the app's.
func legSpan(id leg.ID, noL3 bool) (from, to int, ok bool) {
	switch id {
	case leg.User:
		return 0, 1, true
	case leg.L1:
		return 1, 2, true
	case leg.L2, leg.L2Wire:
		return 2, 3, true
	case leg.L3:
		return 3, 4, true
	case leg.L4:
		if noL3 {
			return 3, 5, true
		}
		return 4, 5, true
	}
	return 0, 0, false
}

// hasNoL3 reports whether no event is on L3.
func hasNoL3(events []*decode.Event) bool {
	for _, e := range events {
		if e.LegID == leg.L3 {
			return false
		}
	}
	return true
}

// maxHTMLEvents bounds the diagram.
const maxHTMLEvents = 3000

// WriteHTML writes a self-contained HTML page (inline SVG and CSS, no
// script, nothing fetched) with a sequence diagram of the events: a lane
// per hop of the chain, an arrow per event in the direction it crossed,
// details (time, leg, connection, full text) on hover, and the per-hop
// latency of each request below.
func WriteHTML(w io.Writer, title string, events []*decode.Event, hops []Hops) error {
	return WriteHTMLPage(w, HTMLPage{Title: title}, events, hops)
}

// legend is the colour of each kind of arrow.
var legend = []struct{ color, what string }{
	{"#a60", "HTTP requests and responses (the upgrades)"}, {"#36c", "port-forward streams opened and reset"},
	{"#2a7", "data towards and from the pod, requests ended"}, {"#c33", "error stream text, decode errors"},
	{"#d90", "warnings, gaps"}, {"#999", "frames (-v), pings, closes"},
}

// WriteHTMLPage is WriteHTML with a scenario line under the title; lanes
// are named after the session's legs (its client, its runtime), the time
// since the first event runs down the left, and consecutive bulk frames of
// a stream (-v) are folded into one band, listed below the diagram.
func WriteHTMLPage(w io.Writer, pg HTMLPage, events []*decode.Event, hops []Hops) error {
	title := pg.Title
	lanes := laneNames(events)
	noL3 := hasNoL3(events)
	var rows []*decode.Event
	for _, e := range events {
		if _, _, ok := legSpan(e.LegID, noL3); ok && e.Kind != decode.KindConn && e.Kind != decode.KindTCP {
			rows = append(rows, e)
		}
	}
	bands := fold(rows)
	truncated := 0
	if len(bands) > maxHTMLEvents {
		truncated = len(bands) - maxHTMLEvents
		bands = bands[:maxHTMLEvents]
	}
	const colW, top, rowH, left = 190, 70, 22, 120
	width := left + colW*(len(chainNodes)-1) + 260
	height := top + rowH*(len(bands)+1) + 20
	var b strings.Builder
	fmt.Fprintf(&b, `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>%s</title>
<style>
body{font-family:system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:18px} .lane{stroke:#9ab;stroke-width:2} .node{font-weight:bold;font-size:13px}
.ev line{stroke-width:1.6} .ev text{font-size:11px;font-family:ui-monospace,monospace;paint-order:stroke;stroke:#fff;stroke-width:3px}
.ev:hover text{font-weight:bold} .t{fill:#667;font-size:10px;font-family:ui-monospace,monospace}
.k-request line,.k-data line{stroke:#2a7} .k-error line,.k-decode-error line{stroke:#c33} .k-stream line{stroke:#36c}
.k-http-request line,.k-http-response line{stroke:#a60} .k-spdy line,.k-ws line,.k-ping line,.k-close line{stroke:#999}
.k-warning line,.k-gap line{stroke:#d90} table{border-collapse:collapse;font-size:12px;margin-top:12px} td,th{border:1px solid #ccd;padding:3px 6px}
.fold line{stroke-width:7;stroke-opacity:.45} .scenario{color:#445} .legend span{margin-right:14px;font-size:12px;white-space:nowrap}
.legend i{display:inline-block;width:18px;height:4px;margin-right:5px;vertical-align:middle}
</style></head><body>
<h1>%s</h1>
`, html.EscapeString(title), html.EscapeString(title))
	if pg.Scenario != "" {
		fmt.Fprintf(&b, "<p class=\"scenario\">%s</p>\n", html.EscapeString(pg.Scenario))
	}
	b.WriteString(`<p>One lane per hop of the port-forward chain; each arrow is one event, in the direction its bytes went; the time since the first event runs down the left. Hover for details.</p>
<p class="legend">`)
	for _, l := range legend {
		fmt.Fprintf(&b, `<span><i style="background:%s"></i>%s</span> `, l.color, html.EscapeString(l.what))
	}
	fmt.Fprintf(&b, `</p>
<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" aria-label="port-forward sequence diagram">
<defs><marker id="a" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#555"/></marker></defs>
<text class="t" x="4" y="%d">ms since the first event</text>
`, width, height, top+4)
	for i, n := range lanes {
		x := left + i*colW
		fmt.Fprintf(&b, `<line class="lane" x1="%d" y1="%d" x2="%d" y2="%d"/><text class="node" x="%d" y="%d" text-anchor="middle">%s</text>`+"\n",
			x, top-15, x, height-10, x, top-25, html.EscapeString(n))
	}
	var start time.Time
	if len(bands) > 0 {
		start = bands[0].e.Time
	}
	var folded []band
	for i, bd := range bands {
		e := bd.e
		from, to, _ := legSpan(e.LegID, noL3)
		y := top + rowH*(i+1)
		x1, x2 := left+from*colW, left+to*colW
		if e.Dir == decode.FromServer {
			x1, x2 = x2, x1
		}
		marker := ` marker-end="url(#a)"`
		if e.Dir == "" {
			marker = ""
		}
		tip := fmt.Sprintf("+%.6fs  %s  conn #%d  %s\n%s", e.Time.Sub(start).Seconds(), e.Leg, e.Conn, e.Kind, e.Text)
		label := e.Text
		class := "ev k-" + string(e.Kind)
		if bd.folded > 1 {
			folded = append(folded, bd)
			label = fmt.Sprintf("%d %s frames, %s, over %s (folded: listed below)", bd.folded, e.Type, fmtSize(int64(bd.bytes)), fmtLatency(bd.last.Sub(e.Time)))
			tip = fmt.Sprintf("+%.6fs to +%.6fs  %s  conn #%d\n%s", e.Time.Sub(start).Seconds(), bd.last.Sub(start).Seconds(), e.Leg, e.Conn, label)
			class += " fold"
		}
		if r := []rune(label); len(r) > 60 {
			label = string(r[:60]) + "…"
		}
		fmt.Fprintf(&b, `<g class="%s"><title>%s</title><text class="t" x="4" y="%d">+%.3fms</text><line x1="%d" y1="%d" x2="%d" y2="%d"%s/><text x="%d" y="%d">%s</text></g>`+"\n",
			class, html.EscapeString(tip), y+4, float64(e.Time.Sub(start))/1e6, x1, y, x2, y, marker, min(x1, x2)+6, y-4, html.EscapeString(label))
	}
	b.WriteString("</svg>\n")
	if truncated > 0 {
		fmt.Fprintf(&b, "<p>%d more events are not drawn.</p>\n", truncated)
	}
	if len(folded) > 0 {
		fmt.Fprintf(&b, "<details><summary>%d folded bands of bulk frames</summary><ul>\n", len(folded))
		for _, bd := range folded {
			fmt.Fprintf(&b, "<li>+%.3fms to +%.3fms  %s conn #%d %s: %d %s frames, %s</li>\n", float64(bd.e.Time.Sub(start))/1e6, float64(bd.last.Sub(start))/1e6,
				html.EscapeString(bd.e.Leg), bd.e.Conn, bd.e.Dir, bd.folded, html.EscapeString(bd.e.Type), fmtSize(int64(bd.bytes)))
		}
		b.WriteString("</ul></details>\n")
	}
	setups := setupCosts{}
	for _, e := range events {
		setups.note(e)
	}
	if a := Aggregates(hops, setups); a.Requests >= 2 {
		fmt.Fprintf(&b, "<h2>Over all %d requests</h2>\n<pre>%s</pre>\n", a.Requests, html.EscapeString(strings.TrimPrefix(AggregateText(a, false), "\n")))
	}
	if len(hops) > 0 {
		b.WriteString("<h2>Per-hop latency of the first byte</h2>\n<table><tr><th>request</th><th>direction</th><th>hops</th><th>end to end</th></tr>\n")
		for _, h := range hops {
			for _, d := range []struct {
				name string
				dh   DirHops
			}{{"→ pod", h.ToPod}, {"← pod", h.FromPod}} {
				if len(d.dh.Legs) < 2 {
					continue
				}
				var cells []string
				for k, l := range d.dh.Legs {
					if k > 0 {
						cells = append(cells, "─"+fmtLatency(d.dh.FirstByte[k-1])+"→")
					}
					cells = append(cells, html.EscapeString(l.Leg))
				}
				fmt.Fprintf(&b, "<tr><td>%s</td><td>%s %s</td><td>%s</td><td>%s</td></tr>\n", html.EscapeString(h.RequestID), d.name,
					fmtSize(d.dh.Bytes), strings.Join(cells, " "), fmtLatency(d.dh.Total))
			}
		}
		b.WriteString("</table>\n")
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
