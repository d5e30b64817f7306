package decode

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/pftap/pftap/internal/secret"
	"github.com/pftap/pftap/leg"

	"github.com/pftap/pftap/decode/packet"
	"github.com/pftap/pftap/decode/spdy"
	"github.com/pftap/pftap/decode/tcpstream"
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
	// SPDYBytes, when set, is called with every byte of every SPDY
	// session's two directions, in order, as they are handed to the SPDY
	// framer: after a SPDY/3.1 upgrade, the connection's bytes; inside a
	// WebSocket tunnel, its binary messages joined. The same session
	// crosses every SPDY leg byte for byte, so these bytes tell one leg's
	// session from another's (an agent finds trace's own session on the
	// node's legs by them). The SPDYBytes is only valid during the call.
	SPDYBytes func(*SPDYBytes)
}

// SPDYBytes is a piece of one direction of a SPDY session's byte stream,
// given to Options.SPDYBytes.
type SPDYBytes struct {
	Time time.Time
	Conn int
	Leg  string
	Dir  Dir
	// Client and Server are the connection's endpoints.
	Client, Server netip.AddrPort
	// Offset of Data in the direction's SPDY byte stream (0: the first
	// byte after the upgrade). Midstream marks a session joined after its
	// start: the offsets then count from the first frame found.
	Offset    int64
	Midstream bool
	Data      []byte
}

// TLSRecord is one TLS record seen on a leg.
type TLSRecord struct {
	// Time is when the record's first byte arrived.
	Time time.Time
	Conn int
	Leg  string
	// LegID is the leg's place in the chain.
	LegID leg.ID
	Dir   Dir
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
	// LegID is the leg's place in the chain.
	LegID leg.ID
	// LegAt is the end of the connection the leg is tapped at.
	LegAt leg.End
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
	// Partial marks a piece of a SPDY DATA frame whose bytes are still
	// arriving: only Data (the piece) and Offset (where it begins) mean
	// anything, to be digested in order. The frame's last piece comes in a
	// Chunk of its own with Partial false, the frame's Time, Offset, Len
	// and Prefix as for a whole frame, and Data holding that last piece
	// only. Frames are passed in pieces so that no DATA byte is copied on
	// its way; a consumer that needs a frame's bytes together keeps the
	// pieces.
	Partial bool
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
	legAt  map[int]leg.End
	sum    Summary
	conns  []*connState
	failed bool
	chunk  Chunk     // reused for every Options.Chunks call
	record TLSRecord // reused for every Options.Records call
	sb     SPDYBytes // reused for every Options.SPDYBytes call
}

// NewDecoder returns a Decoder that calls emit for every event, in capture
// order. The Event is not reused after emit returns.
func NewDecoder(opts Options, emit func(*Event)) *Decoder {
	d := &Decoder{opts: opts, emit: emit, legs: map[int]string{}, legIDs: map[int]leg.ID{}, legAt: map[int]leg.End{}}
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
		d.legAt[i.Index] = i.At
	}
}

// Add decodes one packet.
func (d *Decoder) Add(p *packet.Packet) {
	// The earliest packet, whichever came first: a caller that holds a
	// connection's packets back (an agent deciding whose it is) may add
	// them after a later connection's.
	if d.sum.Packets == 0 || p.Time.Before(d.sum.Start) {
		d.sum.Start = p.Time
	}
	d.sum.Packets++
	if d.sum.Legs == nil {
		d.sum.Legs = map[string]*LegSummary{}
	}
	name := d.legs[p.Interface]
	ls := d.sum.Legs[name]
	if ls == nil {
		ls = &LegSummary{ID: d.legIDs[p.Interface]}
		d.sum.Legs[name] = ls
	}
	ls.Packets++
	if p.Time.After(d.sum.End) {
		d.sum.End = p.Time
	}
	d.asm.Add(p)
}

// Forget stops decoding the connection between a and b seen on interface
// iface, with no event: its state is freed, it counts as closed, and a
// later packet of its 4-tuple begins a new connection. (An agent that
// decodes a connection to learn whose it is forgets it once it knows.)
func (d *Decoder) Forget(iface int, a, b netip.AddrPort) {
	c := d.asm.Forget(iface, a, b)
	if c == nil {
		return
	}
	if cs, ok := c.User.(*connState); ok {
		cs.dirs = [2]layer{stopped, stopped}
		cs.pf = pfSession{sink: cs}
		cs.pieces = [2]pieces{}
		cs.upgrade, cs.methods = nil, nil
		cs.closed = 2
	}
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

type connState struct {
	d     *Decoder
	c     *tcpstream.Conn
	leg   string
	legID leg.ID
	legAt leg.End
	// dirs decode the two directions, each with the layer of what it
	// carries now.
	dirs [2]layer
	// methods are the requests not answered yet, oldest first: a
	// response to HEAD has no body.
	methods []string
	upgrade *httpMsg // the request that asked to switch protocols
	upAt    time.Time
	proto   string // after 101: "SPDY/3.1", "websocket"
	// tunnelled: a CONNECT was granted; what follows is the tunnel's.
	tunnelled bool
	subprot   string // WebSocket subprotocol
	pf        pfSession
	pieces    [2]pieces // a DATA frame coming in pieces, per direction
	closed    int       // directions closed
	// replaying is set while held bytes are fed again after an upgrade,
	// so that they are not reported as chunks twice.
	replaying bool
	// lastData is when the connection last carried a byte, either way.
	lastData time.Time
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
	cs := &connState{d: d, c: c, leg: d.legs[c.Interface], legID: d.legIDs[c.Interface], legAt: d.legAt[c.Interface]}
	cs.dirs = [2]layer{&detectLayer{}, &detectLayer{}}
	cs.pf.sink = cs
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
	next, lost := cs.dirs[dir].gap()
	cs.dirs[dir] = next
	if lost {
		cs.d.send(0, cs, &Event{Time: t, Kind: KindWarning, Dir: dirOf(dir), Offset: ptr(off),
			Text: "cannot decode this direction past the gap: its framing is lost"})
	}
}

func (h handler) Close(c *tcpstream.Conn, dir tcpstream.Dir, t time.Time, how tcpstream.CloseKind) {
	cs := c.User.(*connState)
	cs.dirs[dir].end(cs, dir, t)
	st := c.Stats(dir)
	if ls := cs.d.sum.Legs[cs.leg]; ls != nil {
		ls.Bytes += st.Bytes
		ls.Retransmitted += st.Retransmitted
		ls.RetransmittedBytes += st.RetransmittedBytes + st.OverlapBytes
	}
	why := how.String()
	if how == tcpstream.ClosedRST && c.Reset {
		why += " from the " + map[tcpstream.Dir]string{tcpstream.ClientToServer: "client", tcpstream.ServerToClient: "server"}[c.ResetBy]
	}
	txt := fmt.Sprintf("%s closed (%s) after %d bytes", dirName(dir), why, st.Bytes+st.GapBytes)
	if c.Refused {
		// One line for both directions: the connection never opened.
		if dir == tcpstream.ClientToServer {
			cs.d.send(0, cs, &Event{Time: t, Kind: KindClose, Dir: dirOf(tcpstream.ServerToClient), Reason: "refused", Bytes: ptr(int64(0)),
				Text: fmt.Sprintf("refused: the SYN to port %d was answered by RST (nothing listens there)", c.Server.Port())})
		}
	} else {
		e := &Event{Time: t, Kind: KindClose, Dir: dirOf(dir), Reason: how.String(), Bytes: ptr(st.Bytes + st.GapBytes), Text: txt}
		quiet := cs.lastData
		if quiet.IsZero() {
			quiet = c.Start
		}
		if !quiet.IsZero() && !t.Before(quiet) {
			e.IdleNS = ptr(int64(t.Sub(quiet)))
		}
		if how == tcpstream.ClosedRST && c.Reset {
			e.ResetBy = dirOf(c.ResetBy)
		}
		cs.d.send(0, cs, e)
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
