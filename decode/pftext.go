package decode

import (
	"fmt"
	"time"

	"github.com/pftap/pftap/decode/spdy"
	"github.com/pftap/pftap/decode/tcpstream"
	"github.com/pftap/pftap/internal/preview"
)

// A connection is its port-forward layer's sink: each fact becomes an
// event with its sentence, and the requests' totals go into the summary.

// label names a stream's request for event text: "request 0 stream 3".
func (r pfRef) label() string {
	if r.HasID {
		return fmt.Sprintf("request %s stream %d", r.RequestID, r.Stream)
	}
	return fmt.Sprintf("stream %d", r.Stream)
}

// typeName is the stream's type as said in text.
func (r pfRef) typeName() string {
	if r.Type == "" {
		return "unknown"
	}
	return r.Type
}

// fill sets what an event says of its stream.
func (r pfRef) fill(e *Event) {
	e.StreamType, e.Port = r.Type, r.Port
	if r.HasID {
		e.RequestID = ptr(r.RequestID)
	}
}

func (cs *connState) pfEvent(at pfAt, kind Kind, text string) *Event {
	return &Event{Time: at.T, Kind: kind, Dir: dirOf(at.Dir), Offset: ptr(at.Off), Text: text}
}

func arrow(d tcpstream.Dir) string {
	if d == tcpstream.ServerToClient {
		return "← pod"
	}
	return "→ pod"
}

func (cs *connState) pfOpened(o pfOpened) {
	if o.Reused {
		e := cs.pfEvent(o.pfAt, KindDecodeError, fmt.Sprintf("SYN_STREAM reuses stream %d", o.Stream))
		e.Stream = ptr(o.Stream)
		cs.d.send(0, cs, e)
	}
	txt := fmt.Sprintf("open %s stream %d", o.typeName(), o.Stream)
	if o.Headers == nil {
		txt += " (headers not readable)"
	} else {
		txt += fmt.Sprintf(" → port %d", o.Port)
		if o.HasID {
			txt += ", request " + o.RequestID
		} else {
			txt += ", no requestID"
		}
	}
	if o.Dir == tcpstream.ServerToClient {
		txt += " (opened by the server!)"
	}
	if o.HalfClosed {
		txt += "; half-closed by its opener at once"
	}
	e := cs.pfEvent(o.pfAt, KindStream, txt)
	e.Type, e.Stream, e.Headers = "SYN_STREAM", ptr(o.Stream), o.Headers
	o.fill(e)
	cs.d.send(0, cs, e)
}

func (cs *connState) pfOrphan(at pfAt, stream uint32) {
	e := cs.pfEvent(at, KindWarning, fmt.Sprintf("DATA on stream %d, which was opened before the capture began", stream))
	e.Stream = ptr(stream)
	cs.d.send(0, cs, e)
}

func (cs *connState) pfChunk(at pfAt, ref pfRef, offset int64, b chunkBytes) {
	f := cs.d.opts.Chunks
	if f == nil {
		return
	}
	c := &cs.d.chunk
	*c = Chunk{Time: at.T, Conn: cs.c.ID, Leg: cs.leg, LegID: cs.legID, LegAt: cs.legAt, Dir: dirOf(at.Dir), Stream: ref.Stream, SPDY: true,
		Offset: offset, Len: b.N, Prefix: b.Head[:min(len(b.Head), ChunkPrefix)], Data: b.Data, Partial: b.Partial}
	if b.Partial {
		c.Len, c.Prefix = len(b.Data), nil
	}
	if ref.HasID {
		c.RequestID = ref.RequestID
	}
	f(c)
}

func (cs *connState) pfData(d pfData) {
	var txt string
	if d.Line != "" {
		txt = fmt.Sprintf("%s %s %s  (%d bytes in frame)", d.label(), arrow(d.Dir), preview.Text(d.Line, 120), d.N)
	} else {
		txt = fmt.Sprintf("%s %s %d bytes %s", d.label(), arrow(d.Dir), d.N, preview.Prefix(d.B, d.N, 32))
	}
	e := cs.pfEvent(d.pfAt, KindData, txt)
	e.Stream, e.Length = ptr(d.Stream), ptr(d.N)
	d.fill(e)
	cs.d.send(0, cs, e)
}

func (cs *connState) pfErrorText(d pfData) {
	e := cs.pfEvent(d.pfAt, KindStreamError, d.label()+" error stream says: "+preview.Bytes(d.B, 300))
	e.Stream, e.Error = ptr(d.Stream), ptr(string(d.B))
	d.fill(e)
	cs.d.send(0, cs, e)
}

func (cs *connState) pfReset(r pfReset) {
	typ := "unknown"
	if r.Ref != nil {
		typ = r.Ref.typeName()
	}
	txt := fmt.Sprintf("RST_STREAM %s stream %d by %s: %v", typ, r.Stream, sideName(r.Dir), r.Status)
	if r.Tidy {
		txt += " (after the server finished: a tidy close)"
	}
	e := cs.pfEvent(r.pfAt, KindStream, txt)
	e.Type, e.Stream, e.Reason = "RST_STREAM", ptr(r.Stream), r.Status.String()
	if r.Ref != nil {
		r.Ref.fill(e)
	}
	cs.d.send(0, cs, e)
}

func (cs *connState) pfPing(p pfPing) {
	who := sideName(p.Dir)
	txt := fmt.Sprintf("PING id=%d from %s", p.ID, who)
	if p.Echo {
		txt = fmt.Sprintf("PING id=%d echoed by %s", p.ID, who)
		if p.Timed {
			txt += fmt.Sprintf(" (round trip %s)", fmtDur(p.RTT))
		}
	}
	e := cs.pfEvent(p.pfAt, KindPing, txt)
	e.Type = "PING"
	cs.d.send(0, cs, e)
}

func (cs *connState) pfGoAway(at pfAt, lastGood uint32, status spdy.GoAwayStatus) {
	e := cs.pfEvent(at, KindGoAway, fmt.Sprintf("GOAWAY from %s: last good stream %d, status %v", sideName(at.Dir), lastGood, status))
	e.Type, e.Reason = "GOAWAY", status.String()
	cs.d.send(0, cs, e)
}

func (cs *connState) pfEnded(r pfEnded) {
	sum := &cs.d.sum
	sum.Requests++
	sum.BytesToPod += r.ToPod
	sum.BytesFromPod += r.FromPod
	ls := sum.Legs[cs.leg]
	if ls == nil {
		ls = &LegSummary{}
	}
	ls.Requests++
	ls.BytesToPod += r.ToPod
	ls.BytesFromPod += r.FromPod
	e := &Event{Time: r.T, Kind: KindRequest, Port: r.Port, BytesToPod: ptr(r.ToPod), BytesFromPod: ptr(r.FromPod), Error: ptr(r.ErrText),
		DurationNS: ptr(int64(r.Took)), RequestID: ptr("")}
	label := "request (" + r.ID + ")"
	if r.HasID {
		e.RequestID = ptr(r.ID)
		label = "request " + r.ID
	}
	txt := fmt.Sprintf("%s port %d: %s → pod, %s ← pod, %s", label, r.Port, fmtBytes(r.ToPod), fmtBytes(r.FromPod), fmtDur(r.Took))
	if r.Replied {
		e.SetupNS = ptr(int64(r.Setup))
		txt += ", streams ready after " + fmtDur(r.Setup)
	}
	status := "ok"
	switch {
	case r.ErrText != "":
		status = "FAILED: " + preview.Text(r.ErrText, 100)
		sum.RequestErrors++
		ls.RequestErrors++
	case r.Reset != "":
		status = "reset: " + r.Reset
		sum.RequestErrors++
		ls.RequestErrors++
	case r.Why != "":
		status = "unfinished: " + r.Why
	}
	e.Reason = r.Why
	e.Text = txt + ", " + status
	cs.d.send(0, cs, e)
}

func (cs *connState) pfChannelPort(at pfAt, ch byte, kind string, port int) {
	e := cs.pfEvent(at, KindStream, fmt.Sprintf("channel %d (%s) announces port %d", ch, kind, port))
	e.StreamType, e.Port = kind, port
	cs.d.send(0, cs, e)
}

func (cs *connState) pfChannelError(at pfAt, port int, text []byte) {
	e := cs.pfEvent(at, KindStreamError, "error channel: "+preview.Bytes(text, 300))
	e.Port, e.Error = port, ptr(string(text))
	cs.d.send(0, cs, e)
}

func (cs *connState) pfChannelData(at pfAt, port int, line string, n int) {
	e := cs.pfEvent(at, KindData, fmt.Sprintf("%s %s  (%d bytes in message)", arrow(at.Dir), preview.Text(line, 120), n))
	e.Port, e.Length = port, ptr(n)
	cs.d.send(0, cs, e)
}

func (cs *connState) pfBadMessage(at pfAt, err error) {
	cs.decodeError(at.Dir, at.T, ptr(at.Off), err)
}

func (cs *connState) finishRequests(t time.Time, why string) { cs.pf.finish(t, why) }

func fmtBytes(n int64) string {
	switch {
	case n < 10<<10:
		return fmt.Sprintf("%d B", n)
	case n < 10<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.3fs", d.Seconds())
	}
}
