package decode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/pftap/pftap/decode/spdy"
	"github.com/pftap/pftap/decode/tcpstream"
	"github.com/pftap/pftap/decode/websocket"
	"github.com/pftap/pftap/internal/preview"
)

// A layer decodes one direction of a connection as what that direction
// carries now: bytes not yet recognised, HTTP/1.1, bytes held after an
// upgrade request until its answer, SPDY/3.1, WebSocket (with an inner
// SPDY framer when it tunnels SPDY), TLS records, or nothing more.
// Switching protocols replaces a direction's layer (cs.dirs[dir] = ...);
// a layer whose direction has been given another stops.
type layer interface {
	// data takes the direction's next in-order bytes, only read during
	// the call.
	data(cs *connState, dir tcpstream.Dir, off int64, t time.Time, b []byte)
	// gap says what decodes the direction past bytes that were not
	// captured, and whether that loses its framing (a warning).
	gap() (next layer, lost bool)
	// end reports what is still buffered when the direction closes.
	end(cs *connState, dir tcpstream.Dir, t time.Time)
}

// data routes in-order bytes to the direction's layer.
func (cs *connState) data(dir tcpstream.Dir, off int64, t time.Time, b []byte) {
	if !cs.replaying && t.After(cs.lastData) {
		cs.lastData = t
	}
	if cs.d.opts.Chunks != nil && !cs.replaying {
		cs.d.chunk = Chunk{Time: t, Conn: cs.c.ID, Leg: cs.leg, LegID: cs.legID, LegAt: cs.legAt, Dir: dirOf(dir), Offset: off, Len: len(b), Prefix: b[:min(len(b), ChunkPrefix)], Data: b}
		cs.d.opts.Chunks(&cs.d.chunk)
	}
	cs.dirs[dir].data(cs, dir, off, t, b)
}

func (cs *connState) decodeError(dir tcpstream.Dir, t time.Time, off *int64, err error) {
	cs.d.send(0, cs, &Event{Time: t, Kind: KindDecodeError, Dir: dirOf(dir), Offset: off, Text: err.Error()})
}

// undecoded is a direction decoded no further: its bytes are counted,
// not read (after a gap, a decode error, or bytes no layer recognised).
type undecoded struct{}

var stopped layer = undecoded{}

func (undecoded) data(*connState, tcpstream.Dir, int64, time.Time, []byte) {}
func (u undecoded) gap() (layer, bool)                                     { return u, false }
func (undecoded) end(*connState, tcpstream.Dir, time.Time)                 {}

// detectLayer looks at the first bytes of a direction to tell what it
// carries.
type detectLayer struct{ buf []byte }

func (l *detectLayer) gap() (layer, bool) { return stopped, true }

func (l *detectLayer) end(cs *connState, dir tcpstream.Dir, t time.Time) {
	if len(l.buf) > 0 {
		l.fail(cs, dir, t)
	}
}

func (l *detectLayer) data(cs *connState, dir tcpstream.Dir, off int64, t time.Time, b []byte) {
	l.buf = append(l.buf, b...)
	buf := l.buf
	_, otherTLS := cs.dirs[dir.Other()].(*tlsLayer)
	switch {
	case looksLikeHTTP(buf, dir == tcpstream.ServerToClient):
		if len(buf) < 8 {
			return // too short to be sure
		}
		h := &httpLayer{}
		cs.dirs[dir] = h
		if otherTLS && dir == tcpstream.ServerToClient {
			// A plain-HTTP server answering a TLS ClientHello: the
			// client was told https for a server that is not.
			cs.d.send(0, cs, &Event{Time: t, Kind: KindWarning, Type: WarnTLSToPlain, Dir: dirOf(dir),
				Text: "the client began TLS and the server answered in plain HTTP: an https URL for a plain-HTTP server"})
		}
		h.data(cs, dir, off, t, buf)
		return
	case len(buf) >= 3 && buf[0] == 0x16 && buf[1] == 0x03 || otherTLS && len(buf) >= 3 && buf[0] >= 0x14 && buf[0] <= 0x17 && buf[1] == 0x03:
		tl := &tlsLayer{}
		cs.dirs[dir] = tl
		tl.data(cs, dir, off, t, buf)
		return
	}
	// A capture that began inside a SPDY session: look for a control
	// frame header to synchronise on.
	if i := findSPDYFrame(buf); i >= 0 {
		sl := &spdyLayer{fr: cs.newFramer(), skipped: int64(i), mid: true}
		cs.dirs[dir] = sl
		msg := "joined a SPDY session mid-way"
		if i > 0 {
			msg += fmt.Sprintf(": skipped %d bytes to the first frame boundary", i)
		}
		cs.d.send(0, cs, &Event{Time: t, Kind: KindWarning, Dir: dirOf(dir), Text: msg})
		if cs.proto == "" {
			cs.proto = "SPDY/3.1"
		}
		sl.data(cs, dir, off, t, buf[i:])
		return
	}
	if len(buf) >= 64<<10 {
		l.fail(cs, dir, t)
	}
}

func (l *detectLayer) fail(cs *connState, dir tcpstream.Dir, t time.Time) {
	cs.d.send(0, cs, &Event{Time: t, Kind: KindWarning, Dir: dirOf(dir),
		Text: fmt.Sprintf("not HTTP, SPDY, WebSocket or TLS: %d bytes not decoded, starting %s", len(l.buf), preview.Bytes(l.buf, 24))})
	cs.dirs[dir] = stopped
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

// httpLayer parses HTTP/1.1 messages.
type httpLayer struct{ p httpParser }

func (h *httpLayer) gap() (layer, bool) { return stopped, true }

func (h *httpLayer) end(cs *connState, dir tcpstream.Dir, t time.Time) {
	if m := h.p.close(); m != nil {
		cs.httpMessage(dir, t, m)
	}
}

func (h *httpLayer) data(cs *connState, dir tcpstream.Dir, _ int64, t time.Time, b []byte) {
	h.p.response = dir == tcpstream.ServerToClient
	h.p.maxBody = cs.d.maxBody()
	h.p.methods = &cs.methods
	msgs, rest, stop, err := h.p.feed(b)
	for _, m := range msgs {
		cs.httpMessage(dir, t, m)
	}
	if err != nil {
		cs.dirs[dir] = stopped
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
		cs.dirs[dir] = &holdLayer{http: h, held: append([]byte(nil), rest...)}
		return
	}
	// A 101 response (or a CONNECT's 2xx): both directions switch.
	cs.switchProtocols(t, rest)
}

// holdLayer keeps what a client sent after a request that asked to switch
// protocols, until the answer says how to read it.
type holdLayer struct {
	http *httpLayer // the request's layer, to go back to when refused
	held []byte
}

func (l *holdLayer) gap() (layer, bool) { return stopped, true }

func (l *holdLayer) end(*connState, tcpstream.Dir, time.Time) {}

func (l *holdLayer) data(cs *connState, dir tcpstream.Dir, _ int64, t time.Time, b []byte) {
	l.held = append(l.held, b...)
	if len(l.held) > 1<<20 {
		cs.dirs[dir] = stopped
		l.held = nil
		cs.decodeError(dir, t, nil, errors.New("more than 1 MiB sent after an upgrade request that was never answered"))
	}
}

// switchProtocols gives both directions the layer of the protocol the 101
// switched to, and feeds them what came with or after it.
func (cs *connState) switchProtocols(t time.Time, rest []byte) {
	var held []byte
	if h, ok := cs.dirs[tcpstream.ClientToServer].(*holdLayer); ok {
		held = h.held
	}
	for dir := range cs.dirs {
		if cs.tunnelled {
			// A CONNECT tunnel: its bytes say what they are.
			cs.dirs[dir] = &detectLayer{}
			continue
		}
		if cs.proto == "websocket" {
			ws := &wsLayer{ws: websocket.NewDecoder()}
			ws.ws.Borrow = true // every frame is consumed before the next Write
			if cs.pf.tunnel {
				ws.tunnel = cs.newFramer()
				// The SPDY frames a message carries are read as its
				// bytes come (client-go reads the tunnel as a stream):
				// each is stamped when its own last byte came, not
				// when the whole message had.
				ws.ws.Parts = true
			}
			cs.dirs[dir] = ws
		} else {
			cs.dirs[dir] = &spdyLayer{fr: cs.newFramer()}
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

// holdClient makes the client's direction wait for the answer to an
// upgrade (a 101 whose request was not seen).
func (cs *connState) holdClient() {
	if _, ok := cs.dirs[tcpstream.ClientToServer].(*holdLayer); !ok {
		h, _ := cs.dirs[tcpstream.ClientToServer].(*httpLayer)
		cs.dirs[tcpstream.ClientToServer] = &holdLayer{http: h}
	}
}

// releaseClient returns the client's direction to HTTP after a refused
// upgrade, and returns what it held (to be parsed as HTTP).
func (cs *connState) releaseClient() []byte {
	l, ok := cs.dirs[tcpstream.ClientToServer].(*holdLayer)
	if !ok {
		return nil
	}
	h := l.http
	if h == nil {
		h = &httpLayer{}
	}
	cs.dirs[tcpstream.ClientToServer] = h
	return l.held
}

// tlsLayer frames TLS records: without keys only their types, sizes and
// times can be shown. Records are walked, not kept: the header being
// read, then the body bytes still to skip.
type tlsLayer struct {
	hdr  []byte
	skip int
	off  int64     // where the current record starts
	t    time.Time // when the current record's first byte arrived
}

// gap: past lost bytes the records cannot be found again; the rest is
// counted.
func (l *tlsLayer) gap() (layer, bool) { return stopped, false }

func (l *tlsLayer) end(*connState, tcpstream.Dir, time.Time) {}

func (l *tlsLayer) data(cs *connState, dir tcpstream.Dir, _ int64, t time.Time, b []byte) {
	for len(b) > 0 {
		if l.skip > 0 {
			k := min(len(b), l.skip)
			l.skip -= k
			b = b[k:]
			if l.skip == 0 {
				l.record(cs, dir, t)
			}
			continue
		}
		if len(l.hdr) == 0 {
			l.t = t
		}
		k := min(5-len(l.hdr), len(b))
		l.hdr = append(l.hdr, b[:k]...)
		b = b[k:]
		if len(l.hdr) < 5 {
			return
		}
		typ, n := l.hdr[0], int(binary.BigEndian.Uint16(l.hdr[3:5]))
		if typ < 0x14 || typ > 0x18 || l.hdr[1] != 3 || n > 1<<14+2048 {
			cs.decodeError(dir, t, ptr(l.off), fmt.Errorf("not a TLS record header: % x", l.hdr))
			cs.dirs[dir] = stopped
			return
		}
		l.skip = n
		if n == 0 {
			l.record(cs, dir, t)
		}
	}
}

var tlsTypes = map[byte]string{0x14: "change_cipher_spec", 0x15: "alert", 0x16: "handshake", 0x17: "application_data", 0x18: "heartbeat"}

// record reports the record whose header is in hdr, complete at t.
func (l *tlsLayer) record(cs *connState, dir tcpstream.Dir, t time.Time) {
	typ, n := l.hdr[0], int(binary.BigEndian.Uint16(l.hdr[3:5]))
	if cs.d.opts.Verbosity >= 1 {
		cs.d.send(1, cs, &Event{Time: t, Kind: KindSPDY, Type: "TLS", Dir: dirOf(dir), Offset: ptr(l.off), Length: ptr(n),
			Text: fmt.Sprintf("TLS %s record len=%d (encrypted)", tlsTypes[typ], n)})
	}
	if cs.d.opts.Records != nil {
		cs.d.record = TLSRecord{Time: l.t, Conn: cs.c.ID, Leg: cs.leg, LegID: cs.legID, Dir: dirOf(dir), Type: typ, Length: n}
		cs.d.opts.Records(&cs.d.record)
	}
	l.off += int64(5 + n)
	l.hdr = l.hdr[:0]
}

// wsLayer reads WebSocket frames; tunnel, when the subprotocol tunnels
// SPDY, reads the SPDY frames their binary messages carry.
type wsLayer struct {
	ws     *websocket.Decoder
	tunnel *spdy.Framer
	pos    int64 // the tunnel's bytes handed to its framer so far
}

func (l *wsLayer) gap() (layer, bool) { return stopped, true }

func (l *wsLayer) end(*connState, tcpstream.Dir, time.Time) {}

func (l *wsLayer) data(cs *connState, dir tcpstream.Dir, _ int64, t time.Time, b []byte) {
	l.ws.Write(b)
	for {
		f, off, err := l.ws.Next()
		if f != nil {
			l.frame(cs, dir, t, off, f)
		}
		if err != nil {
			cs.decodeError(dir, t, ptr(off), err)
			if f == nil {
				cs.dirs[dir] = stopped
				return
			}
			continue
		}
		if f == nil || cs.dirs[dir] != layer(l) {
			return
		}
	}
}

func (l *wsLayer) frame(cs *connState, dir tcpstream.Dir, t time.Time, off int64, f *websocket.Frame) {
	d := cs.d
	event := func() *Event {
		return &Event{Time: t, Kind: KindWS, Dir: dirOf(dir), Offset: ptr(off), Type: f.Opcode.String(), Length: ptr(int(f.Length)), Text: websocket.Summarize(f)}
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
	if d.opts.Verbosity >= 2 && !f.More {
		// Only -vv shows data frames (once whole): most frames of a
		// transfer make no event, and nothing is built for them.
		d.send(2, cs, event())
	}
	switch {
	case cs.pf.tunnel && l.tunnel != nil:
		if f.Opcode == websocket.OpText {
			if f.Part == 0 {
				cs.decodeError(dir, t, ptr(off), errors.New("text message inside a SPDY tunnel (binary expected)"))
			}
			return
		}
		cs.spdyBytes(dir, t, l.pos, cs.c.Midstream(dir), f.Payload)
		l.pos += int64(len(f.Payload))
		l.tunnel.Write(f.Payload)
		cs.drainSPDY(dir, l, l.tunnel, 0, t)
	case cs.pf.channels:
		cs.pf.channelMessage(dir, t, off, f)
	}
}

// spdyLayer reads SPDY/3.1 frames; skipped are the bytes before the first
// frame of a session joined mid-way.
type spdyLayer struct {
	fr      *spdy.Framer
	skipped int64
	pos     int64 // the bytes handed to fr so far
	mid     bool  // found by synchronising on a frame: joined mid-way
}

func (l *spdyLayer) gap() (layer, bool) { return stopped, true }

func (l *spdyLayer) end(cs *connState, dir tcpstream.Dir, t time.Time) {
	if n := l.fr.Buffered(); n > 0 {
		cs.d.send(0, cs, &Event{Time: t, Kind: KindWarning, Dir: dirOf(dir),
			Text: fmt.Sprintf("stream ends inside a SPDY frame (%d bytes of an incomplete frame)", n)})
	}
}

func (l *spdyLayer) data(cs *connState, dir tcpstream.Dir, _ int64, t time.Time, b []byte) {
	cs.spdyBytes(dir, t, l.pos, l.mid || cs.c.Midstream(dir), b)
	l.pos += int64(len(b))
	l.fr.Write(b)
	cs.drainSPDY(dir, l, l.fr, l.skipped, t)
}

// spdyBytes hands a SPDY session's bytes to Options.SPDYBytes.
func (cs *connState) spdyBytes(dir tcpstream.Dir, t time.Time, off int64, mid bool, b []byte) {
	f := cs.d.opts.SPDYBytes
	if f == nil || len(b) == 0 {
		return
	}
	cs.d.sb = SPDYBytes{Time: t, Conn: cs.c.ID, Leg: cs.leg, Dir: dirOf(dir), Client: cs.c.Client, Server: cs.c.Server, Offset: off, Midstream: mid, Data: b}
	f(&cs.d.sb)
}

// drainSPDY reports every frame fr holds, while owner is still the
// direction's layer.
func (cs *connState) drainSPDY(dir tcpstream.Dir, owner layer, fr *spdy.Framer, skipped int64, t time.Time) {
	// The framer may hold the caller's bytes (DataPieces): it copies what
	// it has not returned before they go.
	defer fr.Keep()
	for cs.dirs[dir] == owner {
		f, off, err := fr.Next()
		off += skipped
		var pc *pieced
		if df, ok := f.(*spdy.DataFrame); ok && (df.More || df.Start > 0) {
			whole := cs.dataPiece(dir, t, off, df)
			if whole == nil {
				continue
			}
			f, pc = whole, &cs.pieces[dir].pc
		}
		if f != nil {
			cs.d.sum.SPDYFrames++
			if ls := cs.d.sum.Legs[cs.leg]; ls != nil {
				ls.SPDYFrames++
			}
			cs.pf.pieced = pc
			cs.spdyFrame(dir, t, off, f, err)
			cs.pf.pieced = nil
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
				cs.dirs[dir] = stopped
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
// DATA frame is used at once (pfSession.data copies what it keeps). Its
// DATA comes in pieces as the bytes arrive (no byte is copied to make a
// frame whole), unless Options.Frames wants whole frames.
func (cs *connState) newFramer() *spdy.Framer {
	fr := spdy.NewFramer(nil)
	fr.ReuseData = true
	fr.DataPieces = cs.d.opts.Frames == nil
	return fr
}

// pieceHead is how much of a DATA frame that comes in pieces is kept for
// what looks at a frame's start (an HTTP start line, previews).
const pieceHead = 2048

// pieces is what a direction keeps of a DATA frame coming in pieces.
type pieces struct {
	head    []byte    // its first bytes (all of them, unless chunked)
	chunked bool      // its pieces go to pfChunk as they come
	stream  *pfStream // the data stream they belong to (chunked)
	frame   spdy.DataFrame
	pc      pieced
}

// dataPiece takes a piece of a DATA frame. It returns nil until the last
// piece, then the frame as a whole, its Data the first bytes kept (for
// streams whose chunks are passed on as they come) or all of them.
func (cs *connState) dataPiece(dir tcpstream.Dir, t time.Time, off int64, f *spdy.DataFrame) *spdy.DataFrame {
	ps := &cs.pieces[dir]
	if f.Start == 0 {
		ps.head = ps.head[:0]
		ps.stream = cs.pf.dataStream(f.StreamID)
		ps.chunked = ps.stream != nil
	}
	if ps.chunked && f.More {
		cs.pf.dataPiece(pfAt{dir, t, off}, ps.stream, f)
	}
	if !ps.chunked {
		ps.head = append(ps.head, f.Data...)
	} else if room := pieceHead - len(ps.head); room > 0 {
		ps.head = append(ps.head, f.Data[:min(room, len(f.Data))]...)
	}
	if f.More {
		return nil
	}
	ps.frame = spdy.DataFrame{FrameHeader: f.FrameHeader, Data: ps.head}
	ps.pc = pieced{last: f.Data, chunked: ps.chunked}
	return &ps.frame
}
