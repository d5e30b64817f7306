package decode

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pftap/pftap/decode/spdy"
	"github.com/pftap/pftap/decode/tcpstream"
	"github.com/pftap/pftap/decode/websocket"
	"github.com/pftap/pftap/internal/preview"
)

// maxErrorText bounds what is kept of an error stream's text.
const maxErrorText = 4 << 10

type pfStream struct {
	id      uint32
	opened  time.Time
	replied time.Time
	typ     string // "data", "error", or "" when the headers were not seen
	port    int
	req     *pfRequest
	fin     [2]bool
	rst     bool
	bytes   [2]int64
	shown   [2]bool // a preview of non-HTTP data was shown
	message [2]bool // the next DATA starts a new HTTP message (best effort)
}

// label names the stream's request for event text: "request 0 stream 3".
func (s *pfStream) label() string {
	if s.req != nil && s.req.hasID {
		return fmt.Sprintf("request %s stream %d", s.req.id, s.id)
	}
	return fmt.Sprintf("stream %d", s.id)
}

func (s *pfStream) done() bool { return s.rst || s.fin[0] && s.fin[1] }

type pfRequest struct {
	id      string
	hasID   bool
	port    int
	errS    *pfStream
	dataS   *pfStream
	opened  time.Time
	errText []byte
	reset   string
	ended   bool
	// channel protocol: bytes per direction
	chBytes [2]int64
}

// pfSession follows the port-forward protocol on one upgraded connection.
type pfSession struct {
	cs        *connState
	tunnel    bool // SPDY tunnelled in WebSocket binary messages
	channels  bool // v4.channel.k8s.io: a channel byte per message
	base64    bool // v4.base64.channel.k8s.io
	streams   map[uint32]*pfStream
	reqs      map[string]*pfRequest
	order     []*pfRequest
	unpaired  map[int]*pfRequest
	warnedMid [2]bool
	pings     map[uint32]time.Time
	chanPort  map[byte]int
	chanSeen  [2]map[byte]bool
}

func (pf *pfSession) setWSProtocol(p string) {
	switch {
	case strings.HasPrefix(p, "SPDY/3.1+"), p == "v2.portforward.k8s.io", p == "portforward.k8s.io":
		pf.tunnel = true
	case p == "v4.base64.channel.k8s.io", p == "base64.channel.k8s.io":
		pf.channels, pf.base64 = true, true
	default: // v4.channel.k8s.io, channel.k8s.io, or none: binary channels
		pf.channels = true
	}
}

func (pf *pfSession) stream(id uint32) *pfStream {
	if pf.streams == nil {
		pf.streams = map[uint32]*pfStream{}
	}
	return pf.streams[id]
}

func (pf *pfSession) request(key string, hasID bool, port int, t time.Time) *pfRequest {
	if pf.reqs == nil {
		pf.reqs = map[string]*pfRequest{}
	}
	r := pf.reqs[key]
	if r == nil || r.ended {
		r = &pfRequest{id: key, hasID: hasID, port: port, opened: t}
		pf.reqs[key] = r
		pf.order = append(pf.order, r)
	}
	return r
}

func (pf *pfSession) send(lv level, e *Event) { pf.cs.d.send(lv, pf.cs, e) }

// frame follows one SPDY frame at the port-forward level.
func (pf *pfSession) frame(dir tcpstream.Dir, t time.Time, off int64, f spdy.Frame) {
	who := sideName(dir)
	switch f := f.(type) {
	case *spdy.SynStreamFrame:
		pf.open(dir, t, off, f)
	case *spdy.DataFrame:
		s := pf.stream(f.StreamID)
		if s == nil {
			// A stream opened before the capture began.
			s = &pfStream{id: f.StreamID}
			pf.streams[f.StreamID] = s
			s.req = pf.request("stream "+strconv.FormatUint(uint64(f.StreamID), 10), false, 0, t)
			s.req.dataS = s
			s.typ = "data"
			pf.send(0, &Event{Time: t, Kind: KindWarning, Dir: dirOf(dir), Offset: ptr(off), Stream: ptr(f.StreamID),
				Text: fmt.Sprintf("DATA on stream %d, which was opened before the capture began", f.StreamID)})
		}
		pf.data(dir, t, off, s, f.Data)
		if f.Flags.Has(spdy.FlagFin) {
			s.fin[dir] = true
			pf.check(s.req, t)
		}
	case *spdy.SynReplyFrame, *spdy.HeadersFrame:
		h := f.Header()
		if s := pf.stream(h.StreamID); s != nil && h.Type == spdy.TypeSynReply && s.replied.IsZero() {
			s.replied = t
		}
		if s := pf.stream(h.StreamID); s != nil && h.Flags.Has(spdy.FlagFin) {
			s.fin[dir] = true
			pf.check(s.req, t)
		}
	case *spdy.RstStreamFrame:
		s := pf.stream(f.StreamID)
		txt := fmt.Sprintf("RST_STREAM %s stream %d by %s: %v", streamLabel(s), f.StreamID, who, f.Status)
		e := &Event{Time: t, Kind: KindStream, Dir: dirOf(dir), Offset: ptr(off), Type: "RST_STREAM", Stream: ptr(f.StreamID), Reason: f.Status.String(), Text: txt}
		if s != nil {
			s.rst = true
			pf.fill(e, s)
			// A client that cancels a stream the server has finished is
			// tidying up (kubectl does once the local connection closes).
			tidy := dir == tcpstream.ClientToServer && f.Status == spdy.RstCancel && s.fin[tcpstream.ServerToClient]
			if tidy {
				e.Text += " (after the server finished: a tidy close)"
			} else if s.req.reset == "" {
				s.req.reset = fmt.Sprintf("%s stream reset by %s (%v)", s.typ, who, f.Status)
			}
		}
		pf.send(0, e)
		if s != nil {
			pf.check(s.req, t)
		}
	case *spdy.PingFrame:
		if pf.pings == nil {
			pf.pings = map[uint32]time.Time{}
		}
		txt := fmt.Sprintf("PING id=%d from %s", f.ID, who)
		// Odd IDs are the client's, even the server's; an echo comes
		// from the other side.
		origin := tcpstream.ClientToServer
		if f.ID%2 == 0 {
			origin = tcpstream.ServerToClient
		}
		if dir != origin {
			txt = fmt.Sprintf("PING id=%d echoed by %s", f.ID, who)
			if t0, ok := pf.pings[f.ID]; ok {
				txt += fmt.Sprintf(" (round trip %s)", fmtDur(t.Sub(t0)))
				delete(pf.pings, f.ID)
			}
		} else {
			pf.pings[f.ID] = t
		}
		pf.send(0, &Event{Time: t, Kind: KindPing, Dir: dirOf(dir), Offset: ptr(off), Type: "PING", Text: txt})
	case *spdy.GoAwayFrame:
		pf.send(0, &Event{Time: t, Kind: KindGoAway, Dir: dirOf(dir), Offset: ptr(off), Type: "GOAWAY", Reason: f.Status.String(),
			Text: fmt.Sprintf("GOAWAY from %s: last good stream %d, status %v", who, f.LastGoodStreamID, f.Status)})
	}
}

func sideName(d tcpstream.Dir) string {
	if d == tcpstream.ClientToServer {
		return "client"
	}
	return "server"
}

func streamLabel(s *pfStream) string {
	if s == nil || s.typ == "" {
		return "unknown"
	}
	return s.typ
}

func (pf *pfSession) fill(e *Event, s *pfStream) {
	e.StreamType = s.typ
	e.Port = s.port
	if s.req != nil && s.req.hasID {
		e.RequestID = ptr(s.req.id)
	}
}

func (pf *pfSession) open(dir tcpstream.Dir, t time.Time, off int64, f *spdy.SynStreamFrame) {
	s := &pfStream{id: f.StreamID, opened: t}
	if pf.stream(f.StreamID) != nil {
		pf.send(0, &Event{Time: t, Kind: KindDecodeError, Dir: dirOf(dir), Offset: ptr(off), Stream: ptr(f.StreamID),
			Text: fmt.Sprintf("SYN_STREAM reuses stream %d", f.StreamID)})
	}
	pf.streams[f.StreamID] = s
	s.message = [2]bool{true, true}
	var reqID string
	hasID := false
	if f.Headers != nil {
		s.typ = f.Headers.Get("streamtype")
		s.port, _ = strconv.Atoi(f.Headers.Get("port"))
		reqID = f.Headers.Get("requestid")
		hasID = reqID != ""
	}
	var r *pfRequest
	switch {
	case hasID:
		r = pf.request(reqID, true, s.port, t)
	default:
		// Clients before requestID pair an error stream with the data
		// stream opened next for the same port.
		if pf.unpaired == nil {
			pf.unpaired = map[int]*pfRequest{}
		}
		if p := pf.unpaired[s.port]; p != nil && (s.typ == "data" && p.dataS == nil || s.typ == "error" && p.errS == nil) {
			r = p
			delete(pf.unpaired, s.port)
		} else {
			r = pf.request("stream "+strconv.FormatUint(uint64(f.StreamID), 10), false, s.port, t)
			if s.typ != "" {
				pf.unpaired[s.port] = r
			}
		}
	}
	s.req = r
	switch s.typ {
	case "error":
		r.errS = s
	default:
		r.dataS = s
	}
	if f.Flags.Has(spdy.FlagFin) {
		s.fin[dir] = true
	}
	txt := fmt.Sprintf("open %s stream %d", streamLabel(s), f.StreamID)
	if f.Headers == nil {
		txt += " (headers not readable)"
	} else {
		txt += fmt.Sprintf(" → port %d", s.port)
		if hasID {
			txt += ", request " + reqID
		} else {
			txt += ", no requestID"
		}
	}
	if dir == tcpstream.ServerToClient {
		txt += " (opened by the server!)"
	}
	if f.Flags.Has(spdy.FlagFin) {
		txt += "; half-closed by its opener at once"
	}
	e := &Event{Time: t, Kind: KindStream, Dir: dirOf(dir), Offset: ptr(off), Type: "SYN_STREAM", Stream: ptr(f.StreamID), Headers: f.Headers, Text: txt}
	pf.fill(e, s)
	pf.send(0, e)
}

func (pf *pfSession) data(dir tcpstream.Dir, t time.Time, off int64, s *pfStream, b []byte) {
	if f := pf.cs.d.opts.Chunks; f != nil && s.typ == "data" && len(b) > 0 {
		c := &pf.cs.d.chunk
		*c = Chunk{Time: t, Conn: pf.cs.c.ID, Leg: pf.cs.leg, Dir: dirOf(dir), Stream: s.id, SPDY: true,
			Offset: s.bytes[dir], Len: len(b), Prefix: b[:min(len(b), ChunkPrefix)], Data: b}
		if s.req != nil && s.req.hasID {
			c.RequestID = s.req.id
		}
		f(c)
	}
	s.bytes[dir] += int64(len(b))
	if len(b) == 0 {
		return
	}
	r := s.req
	if s.typ == "error" {
		if dir == tcpstream.ServerToClient {
			if room := maxErrorText - len(r.errText); room > 0 {
				r.errText = append(r.errText, b[:min(room, len(b))]...)
			}
			e := &Event{Time: t, Kind: KindStreamError, Dir: dirOf(dir), Offset: ptr(off), Stream: ptr(s.id),
				Error: ptr(string(b)), Text: s.label() + " error stream says: " + preview.Bytes(b, 300)}
			pf.fill(e, s)
			pf.send(0, e)
		}
		return
	}
	arrow := "→ pod"
	if dir == tcpstream.ServerToClient {
		arrow = "← pod"
	}
	if line, ok := httpStartLine(b); ok {
		e := &Event{Time: t, Kind: KindData, Dir: dirOf(dir), Offset: ptr(off), Stream: ptr(s.id), Length: ptr(len(b)),
			Text: fmt.Sprintf("%s %s %s  (%d bytes in frame)", s.label(), arrow, preview.Text(line, 120), len(b))}
		pf.fill(e, s)
		pf.send(0, e)
		s.shown[dir] = true
		return
	}
	if !s.shown[dir] {
		s.shown[dir] = true
		e := &Event{Time: t, Kind: KindData, Dir: dirOf(dir), Offset: ptr(off), Stream: ptr(s.id), Length: ptr(len(b)),
			Text: fmt.Sprintf("%s %s %d bytes %s", s.label(), arrow, len(b), preview.Bytes(b, 32))}
		pf.fill(e, s)
		pf.send(0, e)
	}
}

// httpStartLine recognises an HTTP/1.x request or status line at the start
// of b.
// Most DATA frames of a transfer are not: nothing is allocated for them.
func httpStartLine(b []byte) (string, bool) {
	status := bytes.HasPrefix(b, []byte("HTTP/1."))
	if !status && !startsWithMethod(b) {
		return "", false
	}
	i := 0
	for i < len(b) && i < 2048 && b[i] != '\r' && b[i] != '\n' {
		i++
	}
	line := b[:i]
	if status {
		if len(line) >= 12 && line[8] == ' ' {
			if _, err := strconv.Atoi(string(line[9:12])); err == nil {
				return string(line), true
			}
		}
		return "", false
	}
	if bytes.Contains(line, []byte(" HTTP/1.")) {
		return string(line), true
	}
	return "", false
}

// startsWithMethod reports whether b begins with an HTTP method and a
// space.
func startsWithMethod(b []byte) bool {
	for _, m := range httpMethods {
		if len(b) >= len(m) && string(b[:len(m)]) == m {
			return true
		}
	}
	return false
}

// check ends a request once both of its streams are done.
func (pf *pfSession) check(r *pfRequest, t time.Time) {
	if r == nil || r.ended {
		return
	}
	dataDone := r.dataS == nil || r.dataS.done()
	errDone := r.errS == nil || r.errS.rst || r.errS.fin[tcpstream.ServerToClient]
	if r.dataS == nil && r.errS != nil && len(r.errText) == 0 {
		return // the data stream has not been opened yet
	}
	if dataDone && errDone {
		pf.end(r, t, "")
	}
}

func (pf *pfSession) end(r *pfRequest, t time.Time, why string) {
	if r.ended {
		return
	}
	r.ended = true
	sum := &pf.cs.d.sum
	sum.Requests++
	var toPod, fromPod int64
	if r.dataS != nil {
		toPod, fromPod = r.dataS.bytes[0], r.dataS.bytes[1]
	}
	toPod += r.chBytes[0]
	fromPod += r.chBytes[1]
	sum.BytesToPod += toPod
	sum.BytesFromPod += fromPod
	ls := sum.Legs[pf.cs.leg]
	if ls == nil {
		ls = &LegSummary{}
	}
	ls.Requests++
	ls.BytesToPod += toPod
	ls.BytesFromPod += fromPod
	errText := string(r.errText)
	e := &Event{Time: t, Kind: KindRequest, Port: r.port, BytesToPod: ptr(toPod), BytesFromPod: ptr(fromPod), Error: ptr(errText),
		DurationNS: ptr(int64(t.Sub(r.opened)))}
	if r.hasID {
		e.RequestID = ptr(r.id)
	} else {
		e.RequestID = ptr("")
	}
	label := "request " + r.id
	if !r.hasID {
		label = "request (" + r.id + ")"
	}
	txt := fmt.Sprintf("%s port %d: %s → pod, %s ← pod, %s", label, r.port, fmtBytes(toPod), fmtBytes(fromPod), fmtDur(t.Sub(r.opened)))
	if r.dataS != nil && !r.dataS.replied.IsZero() {
		// From the request's first SYN_STREAM to its data stream's reply.
		setup := r.dataS.replied.Sub(r.opened)
		e.SetupNS = ptr(int64(setup))
		txt += ", streams ready after " + fmtDur(setup)
	}
	status := "ok"
	switch {
	case errText != "":
		status = "FAILED: " + preview.Text(errText, 100)
		sum.RequestErrors++
		ls.RequestErrors++
	case r.reset != "":
		status = "reset: " + r.reset
		sum.RequestErrors++
		ls.RequestErrors++
	case why != "":
		status = "unfinished: " + why
	}
	if why != "" {
		e.Reason = why
	}
	e.Text = txt + ", " + status
	pf.send(0, e)
}

func (cs *connState) finishRequests(t time.Time, why string) {
	for _, r := range cs.pf.order {
		cs.pf.end(r, t, why)
	}
}

// channelMessage follows the v4 channel protocol: one channel byte per
// message; the server starts each channel with the port, little endian.
func (pf *pfSession) channelMessage(dir tcpstream.Dir, t time.Time, off int64, f *websocket.Frame) {
	p := f.Payload
	if len(p) == 0 {
		return
	}
	ch := p[0]
	p = p[1:]
	if pf.base64 {
		if ch < '0' {
			return
		}
		ch -= '0'
		dec, err := base64.StdEncoding.DecodeString(string(p))
		if err != nil {
			pf.cs.decodeError(dir, t, ptr(off), fmt.Errorf("base64 channel message: %v", err))
			return
		}
		p = dec
	}
	if pf.chanPort == nil {
		pf.chanPort = map[byte]int{}
		pf.chanSeen = [2]map[byte]bool{{}, {}}
	}
	idx := int(ch / 2)
	key := "channel " + strconv.Itoa(idx)
	if dir == tcpstream.ServerToClient && !pf.chanSeen[dir][ch] {
		pf.chanSeen[dir][ch] = true
		if len(p) >= 2 {
			port := int(binary.LittleEndian.Uint16(p))
			pf.chanPort[ch] = port
			p = p[2:]
			r := pf.request(key, false, port, t)
			r.port = port
			kind := "data"
			if ch%2 == 1 {
				kind = "error"
			}
			pf.send(0, &Event{Time: t, Kind: KindStream, Dir: dirOf(dir), Offset: ptr(off), StreamType: kind, Port: port,
				Text: fmt.Sprintf("channel %d (%s) announces port %d", ch, kind, port)})
		}
	}
	r := pf.request(key, false, pf.chanPort[ch&^1], t)
	if ch%2 == 1 {
		if len(p) > 0 && dir == tcpstream.ServerToClient {
			r.errText = append(r.errText, p[:min(len(p), maxErrorText-len(r.errText))]...)
			pf.send(0, &Event{Time: t, Kind: KindStreamError, Dir: dirOf(dir), Offset: ptr(off), Port: r.port,
				Error: ptr(string(p)), Text: "error channel: " + preview.Bytes(p, 300)})
		}
		return
	}
	r.chBytes[dir] += int64(len(p))
	if line, ok := httpStartLine(p); ok {
		arrow := "→ pod"
		if dir == tcpstream.ServerToClient {
			arrow = "← pod"
		}
		pf.send(0, &Event{Time: t, Kind: KindData, Dir: dirOf(dir), Offset: ptr(off), Port: r.port, Length: ptr(len(p)),
			Text: fmt.Sprintf("%s %s  (%d bytes in message)", arrow, preview.Text(line, 120), len(p))})
	}
}

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
