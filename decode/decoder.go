package decode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/pftap/pftap/internal/secret"
	"github.com/pftap/pftap/leg"
	"net/url"
	"strings"
	"time"

	"github.com/pftap/pftap/decode/packet"
	"github.com/pftap/pftap/decode/spdy"
	"github.com/pftap/pftap/decode/tcpstream"
	"github.com/pftap/pftap/decode/websocket"
	"github.com/pftap/pftap/internal/preview"
)

// Options control a Decoder.
type Options struct {
	// Verbosity 0 gives port-forward events; 1 adds every SPDY frame (and
	// TLS record); 2 adds WebSocket frames and TCP segments.
	Verbosity int
	// ShowSecrets keeps Authorization, Cookie and bearer tokens as captured
	// instead of redacting them.
	ShowSecrets bool
	// Chunks, when set, is called for every piece of payload: the TCP
	// payload of every connection in order, and the DATA of every
	// port-forward data stream. Correlating legs by byte offset needs them.
	Chunks func(*Chunk)
	// Frames, when set, is called for every SPDY frame that decodes
	// cleanly, in capture order, with the frame itself: headers, DATA
	// payloads, RST codes. Replaying a recording needs them.
	Frames func(*FrameInfo)
	// MaxBody is how many bytes of each HTTP message body Events carry in
	// Body (DefaultMaxBody when zero).
	MaxBody int
	// Records, when set, is called for every TLS record of a connection
	// that carries TLS (sizes and times: the content is encrypted). The
	// TLSRecord is only valid during the call.
	Records func(*TLSRecord)
}

// TLSRecord is one TLS record seen on a leg.
type TLSRecord struct {
	// Time is when the record's first byte arrived.
	Time time.Time
	Conn int
	Leg  string
	Dir  Dir
	// Type is the record's content type (23: application data).
	Type   byte
	Length int
}

// FrameInfo is one SPDY frame on a leg, given to Options.Frames. The
// FrameInfo and the frame's DATA payload are only valid during the call.
type FrameInfo struct {
	Time time.Time
	Conn int
	Leg  string
	Dir  Dir
	// Offset of the frame in its direction's SPDY byte stream.
	Offset int64
	Frame  spdy.Frame
}

// ChunkPrefix is how many leading bytes of a chunk are kept in Chunk.Prefix.
const ChunkPrefix = 64

// Chunk is a piece of payload seen on a leg at a byte offset: either TCP
// payload of a connection, or DATA of a port-forward data stream.
type Chunk struct {
	Time time.Time
	Conn int
	Leg  string
	// Dir is ToServer for bytes towards the pod.
	Dir Dir
	// Stream and RequestID are set for a port-forward data stream.
	Stream    uint32
	RequestID string
	// SPDY is true for data-stream DATA, false for TCP payload.
	SPDY bool
	// Offset of the first byte in its direction of the stream or connection.
	Offset int64
	Len    int
	// Prefix holds the first ChunkPrefix bytes, Data all of them. The
	// Chunk, Prefix and Data are only valid during the call: copy what you
	// keep.
	Prefix []byte
	Data   []byte
}

// A Decoder turns captured packets into Events. It is not safe for
// concurrent use. Feed it packets in capture order with Add, then call
// Finish.
type Decoder struct {
	opts   Options
	emit   func(*Event)
	asm    *tcpstream.Assembler
	legs   map[int]string
	legIDs map[int]leg.ID
	sum    Summary
	conns  []*connState
	failed bool
	chunk  Chunk     // reused for every Options.Chunks call
	record TLSRecord // reused for every Options.Records call
}

// NewDecoder returns a Decoder that calls emit for every event, in capture
// order. The Event is not reused after emit returns.
func NewDecoder(opts Options, emit func(*Event)) *Decoder {
	d := &Decoder{opts: opts, emit: emit, legs: map[int]string{}, legIDs: map[int]leg.ID{}}
	d.asm = tcpstream.NewAssembler(handler{d})
	return d
}

// SetInterfaces names the capture interfaces; events carry the name of the
// interface their connection was seen on as their Leg.
func (d *Decoder) SetInterfaces(ifs []packet.Interface) {
	for _, i := range ifs {
		name := i.Name
		if name == "" && len(ifs) > 1 {
			name = fmt.Sprintf("if%d", i.Index)
		}
		d.legs[i.Index] = name
		d.legIDs[i.Index] = i.Leg
	}
}

// Add decodes one packet.
func (d *Decoder) Add(p *packet.Packet) {
	if d.sum.Packets == 0 {
		d.sum.Start = p.Time
	}
	d.sum.Packets++
	if d.sum.Legs == nil {
		d.sum.Legs = map[string]*LegSummary{}
	}
	name := d.legs[p.Interface]
	ls := d.sum.Legs[name]
	if ls == nil {
		ls = &LegSummary{}
		d.sum.Legs[name] = ls
	}
	ls.Packets++
	if p.Time.After(d.sum.End) {
		d.sum.End = p.Time
	}
	d.asm.Add(p)
}

// Pending counts what a live capture still waits to see: connections not
// closed both ways (FIN or RST), and port-forward requests not ended. A
// session has drained when both are zero.
func (d *Decoder) Pending() (conns, requests int) {
	for _, cs := range d.conns {
		if cs.closed < 2 {
			conns++
		}
		for _, r := range cs.pf.order {
			if !r.ended {
				requests++
			}
		}
	}
	return conns, requests
}

// Finish ends the input: open holes become gaps, unfinished requests are
// summarised, and the totals are returned.
func (d *Decoder) Finish() Summary {
	d.asm.Flush(d.sum.End)
	for _, cs := range d.conns {
		cs.finishRequests(d.sum.End, "capture ended")
	}
	d.sum.settle()
	return d.sum
}

func (d *Decoder) maxBody() int {
	if d.opts.MaxBody > 0 {
		return d.opts.MaxBody
	}
	return DefaultMaxBody
}

type level int

func (d *Decoder) send(lv level, cs *connState, e *Event) {
	switch e.Kind {
	case KindGap:
		d.sum.Gaps++
		if ls := d.sum.Legs[cs.leg]; ls != nil {
			ls.Gaps++
		}
		d.sum.GapBytes += *e.Bytes
	case KindWarning:
		d.sum.Warnings++
	case KindDecodeError:
		d.sum.DecodeErrors++
		if d.sum.FirstError == "" {
			d.sum.FirstError = fmt.Sprintf("conn %d %s: %s", cs.c.ID, e.Dir, e.Text)
		}
	}
	if int(lv) > d.opts.Verbosity {
		return
	}
	e.Conn = cs.c.ID
	e.Leg, e.LegID = cs.leg, cs.legID
	if e.Diagnosis == "" {
		e.Diagnosis = Diagnose(e)
	}
	d.emit(e)
}

type dirMode uint8

const (
	modeDetect dirMode = iota
	modeHTTP
	modeHold // a request asked to switch protocols; waiting for the answer
	modeSPDY
	modeWS
	modeTLS
	modeRaw
	modeDead
)

type dirDec struct {
	mode   dirMode
	http   httpParser
	hold   []byte
	spdy   *spdy.Framer
	ws     *websocket.Decoder
	detect []byte
	// TLS records are walked, not kept: the header being read, then the
	// body bytes still to skip.
	tlsHdr  []byte
	tlsSkip int
	tlsOff  int64     // where the current record starts
	tlsT    time.Time // when the current record's first byte arrived
	skipped int64     // bytes skipped before the first SPDY frame (mid-session join)
}

type connState struct {
	d       *Decoder
	c       *tcpstream.Conn
	leg     string
	legID   leg.ID
	dirs    [2]dirDec
	upgrade *httpMsg // the request that asked to switch protocols
	upAt    time.Time
	proto   string // after 101: "SPDY/3.1", "websocket"
	subprot string // WebSocket subprotocol
	pf      pfSession
	closed  int // directions closed
	// replaying is set while held bytes are fed again after an upgrade,
	// so that they are not reported as chunks twice.
	replaying bool
}

func dirOf(d tcpstream.Dir) Dir {
	if d == tcpstream.ClientToServer {
		return ToServer
	}
	return FromServer
}

type handler struct{ d *Decoder }

func (h handler) Open(c *tcpstream.Conn, t time.Time) {
	d := h.d
	cs := &connState{d: d, c: c, leg: d.legs[c.Interface], legID: d.legIDs[c.Interface]}
	cs.pf.cs = cs
	c.User = cs
	d.conns = append(d.conns, cs)
	d.sum.Connections++
	how := "captured from its SYN"
	if !c.SawSYN {
		how = "joined mid-connection"
		if c.Start.IsZero() {
			how = ""
		}
	}
	d.send(0, cs, &Event{Time: t, Kind: KindConn, Text: fmt.Sprintf("TCP %s → %s (%s)", c.Client, c.Server, how)})
}

func (h handler) Packet(c *tcpstream.Conn, dir tcpstream.Dir, p *packet.Packet) {
	if h.d.opts.Verbosity < 2 {
		return
	}
	cs := c.User.(*connState)
	txt := fmt.Sprintf("TCP [%s] seq=%d ack=%d win=%d len=%d", p.Flags, p.Seq, p.Ack, p.Window, len(p.Payload))
	if p.Missing > 0 {
		txt += fmt.Sprintf(" (+%d not captured)", p.Missing)
	}
	h.d.send(2, cs, &Event{Time: p.Time, Kind: KindTCP, Dir: dirOf(dir), Text: txt, Length: ptr(len(p.Payload))})
}

func (h handler) Data(c *tcpstream.Conn, dir tcpstream.Dir, off int64, t time.Time, b []byte) {
	c.User.(*connState).data(dir, off, t, b)
}

func (h handler) Gap(c *tcpstream.Conn, dir tcpstream.Dir, off, n int64, t time.Time) {
	cs := c.User.(*connState)
	cs.d.send(0, cs, &Event{Time: t, Kind: KindGap, Dir: dirOf(dir), Offset: ptr(off), Bytes: ptr(n),
		Text: fmt.Sprintf("GAP: %d bytes at offset %d were not captured", n, off)})
	dd := &cs.dirs[dir]
	switch dd.mode {
	case modeRaw, modeDead:
	case modeTLS:
		dd.mode = modeRaw
	default:
		dd.mode = modeDead
		cs.d.send(0, cs, &Event{Time: t, Kind: KindWarning, Dir: dirOf(dir), Offset: ptr(off),
			Text: "cannot decode this direction past the gap: its framing is lost"})
	}
}

func (h handler) Close(c *tcpstream.Conn, dir tcpstream.Dir, t time.Time, how tcpstream.CloseKind) {
	cs := c.User.(*connState)
	dd := &cs.dirs[dir]
	if dd.mode == modeHTTP {
		if m := dd.http.close(); m != nil {
			cs.httpMessage(dir, t, m)
		}
	}
	if dd.mode == modeDetect && len(dd.detect) > 0 {
		cs.detectFail(dir, t)
	}
	if dd.mode == modeSPDY && dd.spdy.Buffered() > 0 {
		cs.d.send(0, cs, &Event{Time: t, Kind: KindWarning, Dir: dirOf(dir),
			Text: fmt.Sprintf("stream ends inside a SPDY frame (%d bytes of an incomplete frame)", dd.spdy.Buffered())})
	}
	st := c.Stats(dir)
	if ls := cs.d.sum.Legs[cs.leg]; ls != nil {
		ls.Bytes += st.Bytes
		ls.Retransmitted += st.Retransmitted
		ls.RetransmittedBytes += st.RetransmittedBytes + st.OverlapBytes
	}
	txt := fmt.Sprintf("%s closed (%s) after %d bytes", dirName(dir), how, st.Bytes+st.GapBytes)
	if c.Refused {
		// One line for both directions: the connection never opened.
		if dir == tcpstream.ClientToServer {
			cs.d.send(0, cs, &Event{Time: t, Kind: KindClose, Dir: dirOf(tcpstream.ServerToClient), Reason: "refused", Bytes: ptr(int64(0)),
				Text: fmt.Sprintf("refused: the SYN to port %d was answered by RST (nothing listens there)", c.Server.Port())})
		}
	} else {
		cs.d.send(0, cs, &Event{Time: t, Kind: KindClose, Dir: dirOf(dir), Reason: how.String(), Bytes: ptr(st.Bytes + st.GapBytes), Text: txt})
	}
	cs.closed++
	switch {
	case how == tcpstream.ClosedRST:
		cs.finishRequests(t, "connection reset")
	case how == tcpstream.ClosedEnd:
		// Finish reports what is still open once the capture is over.
	case cs.closed == 2:
		cs.finishRequests(t, "connection closed")
	}
}

func dirName(d tcpstream.Dir) string {
	if d == tcpstream.ClientToServer {
		return "client→server"
	}
	return "server→client"
}

// data routes in-order bytes to the direction's current decoder.
func (cs *connState) data(dir tcpstream.Dir, off int64, t time.Time, b []byte) {
	if cs.d.opts.Chunks != nil && !cs.replaying {
		cs.d.chunk = Chunk{Time: t, Conn: cs.c.ID, Leg: cs.leg, Dir: dirOf(dir), Offset: off, Len: len(b), Prefix: b[:min(len(b), ChunkPrefix)], Data: b}
		cs.d.opts.Chunks(&cs.d.chunk)
	}
	dd := &cs.dirs[dir]
	switch dd.mode {
	case modeDetect:
		cs.detect(dir, off, t, b)
	case modeHTTP:
		cs.feedHTTP(dir, t, b)
	case modeHold:
		dd.hold = append(dd.hold, b...)
		if len(dd.hold) > 1<<20 {
			dd.mode = modeDead
			dd.hold = nil
			cs.decodeError(dir, t, nil, errors.New("more than 1 MiB sent after an upgrade request that was never answered"))
		}
	case modeSPDY:
		dd.spdy.Write(b)
		cs.drainSPDY(dir, t, nil)
	case modeWS:
		dd.ws.Write(b)
		cs.drainWS(dir, t)
	case modeTLS:
		cs.feedTLS(dir, t, b)
	}
}

func (cs *connState) decodeError(dir tcpstream.Dir, t time.Time, off *int64, err error) {
	cs.d.send(0, cs, &Event{Time: t, Kind: KindDecodeError, Dir: dirOf(dir), Offset: off, Text: err.Error()})
}

// detect looks at the first bytes of a direction to tell what it carries.
func (cs *connState) detect(dir tcpstream.Dir, off int64, t time.Time, b []byte) {
	dd := &cs.dirs[dir]
	dd.detect = append(dd.detect, b...)
	buf := dd.detect
	other := &cs.dirs[dir.Other()]
	switch {
	case looksLikeHTTP(buf, dir == tcpstream.ServerToClient):
		if len(buf) < 8 {
			return // too short to be sure
		}
		dd.mode = modeHTTP
		dd.detect = nil
		cs.feedHTTP(dir, t, buf)
		return
	case len(buf) >= 3 && buf[0] == 0x16 && buf[1] == 0x03 || other.mode == modeTLS && len(buf) >= 3 && buf[0] >= 0x14 && buf[0] <= 0x17 && buf[1] == 0x03:
		dd.mode = modeTLS
		dd.detect = nil
		cs.feedTLS(dir, t, buf)
		return
	}
	// A capture that began inside a SPDY session: look for a control
	// frame header to synchronise on.
	if i := findSPDYFrame(buf); i >= 0 {
		dd.mode = modeSPDY
		dd.spdy = newFramer()
		dd.skipped = int64(i)
		dd.detect = nil
		msg := "joined a SPDY session mid-way"
		if i > 0 {
			msg += fmt.Sprintf(": skipped %d bytes to the first frame boundary", i)
		}
		cs.d.send(0, cs, &Event{Time: t, Kind: KindWarning, Dir: dirOf(dir), Text: msg})
		if cs.proto == "" {
			cs.proto = "SPDY/3.1"
		}
		dd.spdy.Write(buf[i:])
		cs.drainSPDY(dir, t, nil)
		return
	}
	if len(buf) >= 64<<10 {
		cs.detectFail(dir, t)
	}
}

func (cs *connState) detectFail(dir tcpstream.Dir, t time.Time) {
	dd := &cs.dirs[dir]
	cs.d.send(0, cs, &Event{Time: t, Kind: KindWarning, Dir: dirOf(dir),
		Text: fmt.Sprintf("not HTTP, SPDY, WebSocket or TLS: %d bytes not decoded, starting %s", len(dd.detect), preview.Bytes(dd.detect, 24))})
	dd.mode = modeRaw
	dd.detect = nil
}

// findSPDYFrame returns the offset of the first plausible SPDY/3 control
// frame header in b, or -1. It asks for two consecutive well-formed frames
// where the buffer holds them, to avoid synchronising on payload bytes.
func findSPDYFrame(b []byte) int {
	for i := 0; i+spdy.FrameHeaderLen <= len(b); i++ {
		if b[i] != 0x80 || b[i+1] != 0x03 || b[i+2] != 0 || b[i+3] == 0 || b[i+3] > 9 {
			continue
		}
		h, _ := spdy.ParseFrameHeader(b[i:])
		next := i + spdy.FrameHeaderLen + int(h.Length)
		if next+spdy.FrameHeaderLen <= len(b) {
			if n, _ := spdy.ParseFrameHeader(b[next:]); n.Control && n.Version != spdy.Version {
				continue
			}
		}
		return i
	}
	return -1
}

func (cs *connState) feedHTTP(dir tcpstream.Dir, t time.Time, b []byte) {
	dd := &cs.dirs[dir]
	dd.http.response = dir == tcpstream.ServerToClient
	dd.http.maxBody = cs.d.maxBody()
	msgs, rest, stop, err := dd.http.feed(b)
	for _, m := range msgs {
		cs.httpMessage(dir, t, m)
	}
	if err != nil {
		dd.mode = modeDead
		if errors.Is(err, errNotHTTP) {
			cs.d.send(0, cs, &Event{Time: t, Kind: KindWarning, Dir: dirOf(dir), Text: "bytes after an HTTP message are not HTTP: not decoded further"})
			return
		}
		cs.decodeError(dir, t, nil, err)
		return
	}
	if !stop {
		return
	}
	if dir == tcpstream.ClientToServer {
		dd.mode = modeHold
		dd.hold = append(dd.hold[:0], rest...)
		return
	}
	// A 101 response: both directions switch.
	cs.switchProtocols(t, rest)
}

func (cs *connState) switchProtocols(t time.Time, rest []byte) {
	c2s, s2c := &cs.dirs[tcpstream.ClientToServer], &cs.dirs[tcpstream.ServerToClient]
	held := c2s.hold
	c2s.hold = nil
	if cs.proto == "websocket" {
		for _, dd := range []*dirDec{c2s, s2c} {
			dd.mode = modeWS
			dd.ws = websocket.NewDecoder()
			dd.ws.Borrow = true // every frame is consumed before the next Write
			if cs.pf.tunnel {
				dd.spdy = newFramer()
			}
		}
	} else {
		for _, dd := range []*dirDec{c2s, s2c} {
			dd.mode = modeSPDY
			dd.spdy = newFramer()
		}
	}
	cs.replaying = true
	if len(held) > 0 {
		cs.data(tcpstream.ClientToServer, 0, t, held)
	}
	if len(rest) > 0 {
		cs.data(tcpstream.ServerToClient, 0, t, rest)
	}
	cs.replaying = false
}

// httpMessage reports one HTTP message and follows upgrades.
func (cs *connState) httpMessage(dir tcpstream.Dir, t time.Time, m *httpMsg) {
	d := cs.d
	e := &Event{Time: t, Dir: dirOf(dir), HTTPHeader: cs.headerMap(m)}
	if len(m.body) > 0 {
		e.Body = string(m.body)
	}
	if !m.response {
		e.Kind = KindHTTPRequest
		e.Method, e.Path = m.method, m.target
		e.Namespace, e.Pod = parsePodPath(m.target)
		txt := m.method + " " + m.target
		if up := m.get("Upgrade"); up != "" && switchesProtocol(m) {
			cs.upgrade, cs.upAt = m, t
			txt += "  upgrade=" + up
			if v := m.get("X-Stream-Protocol-Version"); v != "" {
				txt += " stream-protocols=" + joinValues(m, "X-Stream-Protocol-Version")
			}
			if v := m.get("Sec-WebSocket-Protocol"); v != "" {
				txt += " ws-protocols=" + redactWSProtocols(v, d.opts.ShowSecrets)
			}
		}
		if a := m.get("Authorization"); a != "" {
			txt += "  auth=" + redactAuth(a, d.opts.ShowSecrets)
		}
		e.Text = txt
		d.send(0, cs, e)
		return
	}
	cs.dirs[tcpstream.ClientToServer].http.pop()
	e.Kind = KindHTTPResponse
	e.Status = m.status
	txt := fmt.Sprintf("%d %s", m.status, m.reason)
	req := cs.upgrade
	cs.upgrade = nil
	if m.status == 101 {
		d.sum.Upgrades++
		if req != nil {
			e.DurationNS = ptr(int64(t.Sub(cs.upAt)))
		}
		up := m.get("Upgrade")
		switch {
		case strings.EqualFold(up, "websocket"):
			cs.proto = "websocket"
			cs.subprot = m.get("Sec-WebSocket-Protocol")
			cs.pf.setWSProtocol(cs.subprot)
			e.Protocol = "websocket " + cs.subprot
			txt += "  → WebSocket, subprotocol " + preview.Token(cs.subprot, 60)
			if cs.pf.tunnel {
				txt += " (SPDY/3.1 tunnelled in binary messages)"
			}
		default:
			cs.proto = up
			e.Protocol = up
			txt += "  → " + up
			if v := m.get("X-Stream-Protocol-Version"); v != "" {
				txt += " (" + v + ")"
				e.Protocol += " " + v
			}
		}
		if req != nil {
			txt += ", after " + fmtDur(t.Sub(cs.upAt))
		}
		e.Text = txt
		d.send(0, cs, e)
		if cs.dirs[tcpstream.ClientToServer].mode != modeHold {
			cs.dirs[tcpstream.ClientToServer].mode = modeHold
		}
		return
	}
	if req != nil {
		d.sum.FailedUpgrade++
		txt += "  upgrade refused"
		if v := m.get("X-Accepted-Stream-Protocol-Versions"); v != "" {
			txt += "; server accepts " + v
		}
		// The client may go on with plain HTTP on this connection.
		c2s := &cs.dirs[tcpstream.ClientToServer]
		if c2s.mode == modeHold {
			held := c2s.hold
			c2s.hold = nil
			c2s.mode = modeHTTP
			defer func() {
				if len(held) > 0 {
					cs.feedHTTP(tcpstream.ClientToServer, t, held)
				}
			}()
		}
	}
	switch {
	case m.status >= 300 && len(m.body) > 0:
		txt += ": " + preview.Bytes(statusMessage(m.body), 200)
	case m.bodyLen > 0:
		ct := m.get("Content-Type")
		if ct == "" {
			ct = "body"
		}
		txt += fmt.Sprintf("  (%s, %d bytes)", ct, m.bodyLen)
	}
	e.Text = txt
	d.send(0, cs, e)
}

// statusMessage picks the "message" of a Kubernetes Status body, or returns
// the body as is.
func statusMessage(b []byte) []byte {
	s := string(b)
	const key = `"message":"`
	if i := strings.Index(s, key); i >= 0 {
		rest := s[i+len(key):]
		for j := 0; j < len(rest); j++ {
			if rest[j] == '\\' {
				j++
				continue
			}
			if rest[j] == '"' {
				return []byte(strings.ReplaceAll(rest[:j], `\"`, `"`))
			}
		}
	}
	return []byte(strings.TrimSpace(s))
}

func joinValues(m *httpMsg, name string) string {
	var vs []string
	for _, f := range m.fields {
		if strings.EqualFold(f.name, name) {
			vs = append(vs, f.value)
		}
	}
	return strings.Join(vs, ",")
}

// parsePodPath finds the namespace and pod in an apiserver or kubelet
// port-forward path.
func parsePodPath(target string) (ns, pod string) {
	p := target
	if u, err := url.ParseRequestURI(target); err == nil {
		p = u.Path
	}
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i := 0; i+3 < len(parts); i++ {
		if parts[i] == "namespaces" && parts[i+2] == "pods" {
			return parts[i+1], parts[i+3]
		}
	}
	if len(parts) >= 3 && parts[0] == "portForward" {
		return parts[1], parts[2]
	}
	return "", ""
}

func (cs *connState) headerMap(m *httpMsg) map[string]string {
	if len(m.fields) == 0 {
		return nil
	}
	h := make(map[string]string, len(m.fields))
	for _, f := range m.fields {
		k := strings.ToLower(f.name)
		v := f.value
		if !cs.d.opts.ShowSecrets {
			switch {
			case secret.KeepsScheme(k):
				v = redactAuth(v, false)
			case secret.IsHeader(k):
				v = "<redacted>"
			case k == "sec-websocket-protocol":
				v = redactWSProtocols(v, false)
			}
		}
		if old, ok := h[k]; ok {
			v = old + ", " + v
		}
		h[k] = v
	}
	return h
}

func redactAuth(v string, show bool) string {
	if show {
		return v
	}
	scheme, _, ok := strings.Cut(v, " ")
	if !ok {
		return "<redacted>"
	}
	return scheme + " <redacted>"
}

// redactWSProtocols hides the bearer token that WebSocket clients may carry
// in a "base64url.bearer.authorization.k8s.io.<token>" subprotocol.
func redactWSProtocols(v string, show bool) string {
	if show {
		return v
	}
	parts := strings.Split(v, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if strings.HasPrefix(p, secret.WebSocketTokenPrefix) {
			p = secret.WebSocketTokenPrefix + "<redacted>"
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}

// feedTLS frames TLS records: without keys only their types, sizes and
// times can be shown.
func (cs *connState) feedTLS(dir tcpstream.Dir, t time.Time, b []byte) {
	dd := &cs.dirs[dir]
	for len(b) > 0 {
		if dd.tlsSkip > 0 {
			k := min(len(b), dd.tlsSkip)
			dd.tlsSkip -= k
			b = b[k:]
			if dd.tlsSkip == 0 {
				cs.tlsRecord(dir, t)
			}
			continue
		}
		if len(dd.tlsHdr) == 0 {
			dd.tlsT = t
		}
		k := min(5-len(dd.tlsHdr), len(b))
		dd.tlsHdr = append(dd.tlsHdr, b[:k]...)
		b = b[k:]
		if len(dd.tlsHdr) < 5 {
			return
		}
		typ, n := dd.tlsHdr[0], int(binary.BigEndian.Uint16(dd.tlsHdr[3:5]))
		if typ < 0x14 || typ > 0x18 || dd.tlsHdr[1] != 3 || n > 1<<14+2048 {
			cs.decodeError(dir, t, ptr(dd.tlsOff), fmt.Errorf("not a TLS record header: % x", dd.tlsHdr))
			dd.mode = modeDead
			dd.tlsHdr = nil
			return
		}
		dd.tlsSkip = n
		if n == 0 {
			cs.tlsRecord(dir, t)
		}
	}
}

// tlsRecord reports the record whose header is in tlsHdr, complete at t.
func (cs *connState) tlsRecord(dir tcpstream.Dir, t time.Time) {
	dd := &cs.dirs[dir]
	typ, n := dd.tlsHdr[0], int(binary.BigEndian.Uint16(dd.tlsHdr[3:5]))
	if cs.d.opts.Verbosity >= 1 {
		names := map[byte]string{0x14: "change_cipher_spec", 0x15: "alert", 0x16: "handshake", 0x17: "application_data", 0x18: "heartbeat"}
		cs.d.send(1, cs, &Event{Time: t, Kind: KindSPDY, Type: "TLS", Dir: dirOf(dir), Offset: ptr(dd.tlsOff), Length: ptr(n),
			Text: fmt.Sprintf("TLS %s record len=%d (encrypted)", names[typ], n)})
	}
	if cs.d.opts.Records != nil {
		cs.d.record = TLSRecord{Time: dd.tlsT, Conn: cs.c.ID, Leg: cs.leg, Dir: dirOf(dir), Type: typ, Length: n}
		cs.d.opts.Records(&cs.d.record)
	}
	dd.tlsOff += int64(5 + n)
	dd.tlsHdr = dd.tlsHdr[:0]
}

func (cs *connState) drainWS(dir tcpstream.Dir, t time.Time) {
	dd := &cs.dirs[dir]
	for {
		f, off, err := dd.ws.Next()
		if f != nil {
			cs.wsFrame(dir, t, off, f)
		}
		if err != nil {
			cs.decodeError(dir, t, ptr(off), err)
			if f == nil {
				dd.mode = modeDead
				return
			}
			continue
		}
		if f == nil || dd.mode != modeWS {
			return
		}
	}
}

func (cs *connState) wsFrame(dir tcpstream.Dir, t time.Time, off int64, f *websocket.Frame) {
	d := cs.d
	event := func() *Event {
		return &Event{Time: t, Kind: KindWS, Dir: dirOf(dir), Offset: ptr(off), Type: f.Opcode.String(), Length: ptr(len(f.Payload)), Text: websocket.Summarize(f)}
	}
	switch f.Opcode {
	case websocket.OpPing, websocket.OpPong:
		e := event()
		e.Kind = KindPing
		d.send(0, cs, e)
		return
	case websocket.OpClose:
		d.send(0, cs, event())
		return
	}
	if d.opts.Verbosity >= 2 {
		// Only -vv shows data frames: most frames of a transfer make no
		// event, and nothing is built for them.
		d.send(2, cs, event())
	}
	dd := &cs.dirs[dir]
	switch {
	case cs.pf.tunnel:
		if f.Opcode == websocket.OpText {
			cs.decodeError(dir, t, ptr(off), errors.New("text message inside a SPDY tunnel (binary expected)"))
			return
		}
		dd.spdy.Write(f.Payload)
		cs.drainSPDY(dir, t, ptr(off))
	case cs.pf.channels:
		cs.pf.channelMessage(dir, t, off, f)
	}
}

func (cs *connState) drainSPDY(dir tcpstream.Dir, t time.Time, wsOff *int64) {
	dd := &cs.dirs[dir]
	for dd.mode == modeSPDY || dd.mode == modeWS {
		f, off, err := dd.spdy.Next()
		off += dd.skipped
		if f != nil {
			cs.d.sum.SPDYFrames++
			if ls := cs.d.sum.Legs[cs.leg]; ls != nil {
				ls.SPDYFrames++
			}
			cs.spdyFrame(dir, t, off, f, err)
		}
		if err != nil {
			if errors.Is(err, spdy.ErrMidStream) {
				if !cs.pf.warnedMid[dir] {
					cs.pf.warnedMid[dir] = true
					cs.d.send(0, cs, &Event{Time: t, Kind: KindWarning, Dir: dirOf(dir), Offset: ptr(off),
						Text: "SPDY header blocks cannot be read: the capture began after this direction's first header block (stream types, ports and request IDs unknown)"})
				}
			} else {
				cs.decodeError(dir, t, ptr(off), err)
			}
			if f == nil {
				dd.mode = modeDead
				return
			}
			continue
		}
		if f == nil {
			return
		}
	}
}

func (cs *connState) spdyFrame(dir tcpstream.Dir, t time.Time, off int64, f spdy.Frame, ferr error) {
	h := f.Header()
	if cs.d.opts.Verbosity >= 1 {
		e := &Event{Time: t, Kind: KindSPDY, Dir: dirOf(dir), Offset: ptr(off), Type: h.Type.String(),
			Stream: ptr(h.StreamID), Length: ptr(int(h.Length)), Flags: ptr(h.Flags.Describe(h.Type)), Text: spdy.Summarize(f)}
		switch f := f.(type) {
		case *spdy.SynStreamFrame:
			e.Headers = f.Headers
		case *spdy.SynReplyFrame:
			e.Headers = f.Headers
		case *spdy.HeadersFrame:
			e.Headers = f.Headers
		}
		cs.d.send(1, cs, e)
	}
	if ferr == nil || errors.Is(ferr, spdy.ErrMidStream) {
		if cs.d.opts.Frames != nil && ferr == nil {
			cs.d.opts.Frames(&FrameInfo{Time: t, Conn: cs.c.ID, Leg: cs.leg, Dir: dirOf(dir), Offset: off, Frame: f})
		}
		cs.pf.frame(dir, t, off, f)
	}
}

// newFramer returns a push-mode framer whose DATA aliases its buffer: every
// DATA frame is used at once (pfSession.data copies what it keeps).
func newFramer() *spdy.Framer {
	fr := spdy.NewFramer(nil)
	fr.ReuseData = true
	return fr
}
