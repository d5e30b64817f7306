package timeline

import (
	"fmt"
	"github.com/pftap/pftap/leg"
	"html"
	"io"
	"strings"
	"time"

	"github.com/pftap/pftap/decode"
)

// chainNodes are the columns of the sequence diagram, in chain order.
var chainNodes = []string{"you (curl)", "kubectl", "apiserver", "kubelet", "runtime", "app (pod lo)"}

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
	noL3 := hasNoL3(events)
	var rows []*decode.Event
	for _, e := range events {
		if _, _, ok := legSpan(e.LegID, noL3); ok && e.Kind != decode.KindConn && e.Kind != decode.KindTCP {
			rows = append(rows, e)
		}
	}
	truncated := 0
	if len(rows) > maxHTMLEvents {
		truncated = len(rows) - maxHTMLEvents
		rows = rows[:maxHTMLEvents]
	}
	const colW, top, rowH, left = 190, 70, 22, 120
	width := left + colW*(len(chainNodes)-1) + 260
	height := top + rowH*(len(rows)+1) + 20
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
</style></head><body>
<h1>%s</h1>
<p>One lane per hop of the port-forward chain; each arrow is one event, in the direction its bytes went. Hover for details.</p>
<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" aria-label="port-forward sequence diagram">
<defs><marker id="a" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#555"/></marker></defs>
`, html.EscapeString(title), html.EscapeString(title), width, height)
	for i, n := range chainNodes {
		x := left + i*colW
		fmt.Fprintf(&b, `<line class="lane" x1="%d" y1="%d" x2="%d" y2="%d"/><text class="node" x="%d" y="%d" text-anchor="middle">%s</text>`+"\n",
			x, top-15, x, height-10, x, top-25, html.EscapeString(n))
	}
	var start time.Time
	if len(rows) > 0 {
		start = rows[0].Time
	}
	for i, e := range rows {
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
		if r := []rune(label); len(r) > 60 {
			label = string(r[:60]) + "…"
		}
		fmt.Fprintf(&b, `<g class="ev k-%s"><title>%s</title><text class="t" x="4" y="%d">+%.3fms</text><line x1="%d" y1="%d" x2="%d" y2="%d"%s/><text x="%d" y="%d">%s</text></g>`+"\n",
			e.Kind, html.EscapeString(tip), y+4, float64(e.Time.Sub(start))/1e6, x1, y, x2, y, marker, min(x1, x2)+6, y-4, html.EscapeString(label))
	}
	b.WriteString("</svg>\n")
	if truncated > 0 {
		fmt.Fprintf(&b, "<p>%d more events are not drawn.</p>\n", truncated)
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
