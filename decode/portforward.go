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
)

// The port-forward layer follows the port-forward protocol on one
// upgraded connection: it takes typed SPDY frames (or WebSocket channel
// messages), keeps the streams and requests, and reports what it learns
// as typed facts to a pfSink. It writes no sentences and keeps no totals:
// turning facts into events and summaries is the sink's (pftext.go).

// maxErrorText bounds what is kept of an error stream's text.
const maxErrorText = 4 << 10

// pfSink receives the port-forward layer's facts, in the order they
// happen on the connection.
type pfSink interface {
	// pfOpened: a SYN_STREAM opened a stream (Reused: its ID was in use).
	pfOpened(o pfOpened)
	// pfOrphan: DATA on a stream opened before the capture began.
	pfOrphan(at pfAt, stream uint32)
	// pfChunk: DATA bytes of a data stream, at their offset in the
	// stream's direction.
	pfChunk(at pfAt, ref pfRef, offset int64, c chunkBytes)
	// pfData: the first DATA of a direction of a data stream, or one that
	// starts an HTTP message (Line).
	pfData(d pfData)
	// pfErrorText: the server wrote text on a request's error stream.
	pfErrorText(d pfData)
	pfReset(r pfReset)
	pfPing(p pfPing)
	pfGoAway(at pfAt, lastGood uint32, status spdy.GoAwayStatus)
	// pfEnded: a request is over (both streams done, or the connection
	// closed or reset under it, Why).
	pfEnded(r pfEnded)
	// pfChannelPort, pfChannelError, pfChannelData: the channel protocol's
	// port announcement, error channel text and HTTP start lines.
	pfChannelPort(at pfAt, ch byte, kind string, port int)
	pfChannelError(at pfAt, port int, text []byte)
	pfChannelData(at pfAt, port int, line string, n int)
	// pfBadMessage: a channel message that cannot be read.
	pfBadMessage(at pfAt, err error)
}

// pfAt is where a fact happened: its direction, time and offset.
type pfAt struct {
	Dir tcpstream.Dir
	T   time.Time
	Off int64
}

// pfRef is what a fact says of its stream and request.
type pfRef struct {
	Stream    uint32
	Type      string // "data", "error", or "" when the headers were not seen
	Port      int
	RequestID string
	HasID     bool
}

type pfOpened struct {
	pfAt
	pfRef
	Reused bool
	// Headers are the SYN_STREAM's (nil: not readable).
	Headers    spdy.Headers
	HalfClosed bool // its opener's side ended at once (FIN)
}

type pfData struct {
	pfAt
	pfRef
	B    []byte // the frame's payload, or its first bytes (N is its length)
	N    int
	Line string // an HTTP start line at the start of B ("": none)
}

// chunkBytes are a frame's DATA as pfChunk gets them: a whole frame at
// once (Data all of it), or a frame that came in pieces (Partial calls
// with each piece but the last, then one with the last piece as Data, the
// frame's first bytes as Head and its length as N).
type chunkBytes struct {
	Head, Data []byte
	N          int
	Partial    bool
}

// pieced is a DATA frame whose payload came in pieces (spdy.Framer's
// DataPieces): Data holds its first bytes only.
type pieced struct {
	last    []byte // its last piece
	chunked bool   // its earlier pieces went to pfChunk as they came
}

type pfReset struct {
	pfAt
	Stream uint32
	Ref    *pfRef // nil: a stream not seen opening
	Status spdy.RstStatus
	// Tidy: the client cancelled a stream the server had finished.
	Tidy bool
}

type pfPing struct {
	pfAt
	ID   uint32
	Echo bool // the other side's answer
	// RTT is the time since the ping, for an echo whose ping was seen
	// (Timed).
	RTT   time.Duration
	Timed bool
}

type pfEnded struct {
	T              time.Time
	ID             string
	HasID          bool
	Port           int
	ToPod, FromPod int64
	Took           time.Duration
	// Setup is the time to the data stream's SYN_REPLY (Replied: one
	// was seen).
	Setup          time.Duration
	Replied        bool
	ErrText, Reset string
	Why            string // "" when both streams ended
}

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
}

func (s *pfStream) ref() pfRef {
	r := pfRef{Stream: s.id, Type: s.typ, Port: s.port}
	if s.req != nil && s.req.hasID {
		r.RequestID, r.HasID = s.req.id, true
	}
	return r
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
	sink      pfSink
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
	// pieced is set while frame is given a DATA frame that came in pieces.
	pieced *pieced
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

// frame follows one SPDY frame at the port-forward level.
func (pf *pfSession) frame(dir tcpstream.Dir, t time.Time, off int64, f spdy.Frame) {
	at := pfAt{dir, t, off}
	switch f := f.(type) {
	case *spdy.SynStreamFrame:
		pf.open(at, f)
	case *spdy.DataFrame:
		s := pf.stream(f.StreamID)
		if s == nil {
			// A stream opened before the capture began.
			s = &pfStream{id: f.StreamID}
			pf.streams[f.StreamID] = s
			s.req = pf.request("stream "+strconv.FormatUint(uint64(f.StreamID), 10), false, 0, t)
			s.req.dataS = s
			s.typ = "data"
			pf.sink.pfOrphan(at, f.StreamID)
		}
		c := chunkBytes{Head: f.Data, Data: f.Data, N: len(f.Data)}
		if pc := pf.pieced; pc != nil {
			c = chunkBytes{Head: f.Data, Data: pc.last, N: int(f.Length)}
			if !pc.chunked {
				c.Data = f.Data // every byte was kept
			}
		}
		pf.data(at, s, c)
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
		r := pfReset{pfAt: at, Stream: f.StreamID, Status: f.Status}
		if s != nil {
			s.rst = true
			ref := s.ref()
			r.Ref = &ref
			// A client that cancels a stream the server has finished is
			// tidying up (kubectl does once the local connection closes).
			r.Tidy = dir == tcpstream.ClientToServer && f.Status == spdy.RstCancel && s.fin[tcpstream.ServerToClient]
			if !r.Tidy && s.req.reset == "" {
				s.req.reset = fmt.Sprintf("%s stream reset by %s (%v)", s.typ, sideName(dir), f.Status)
			}
		}
		pf.sink.pfReset(r)
		if s != nil {
			pf.check(s.req, t)
		}
	case *spdy.PingFrame:
		if pf.pings == nil {
			pf.pings = map[uint32]time.Time{}
		}
		p := pfPing{pfAt: at, ID: f.ID}
		// Odd IDs are the client's, even the server's; an echo comes
		// from the other side.
		origin := tcpstream.ClientToServer
		if f.ID%2 == 0 {
			origin = tcpstream.ServerToClient
		}
		if dir != origin {
			p.Echo = true
			if t0, ok := pf.pings[f.ID]; ok {
				p.RTT, p.Timed = t.Sub(t0), true
				delete(pf.pings, f.ID)
			}
		} else {
			pf.pings[f.ID] = t
		}
		pf.sink.pfPing(p)
	case *spdy.GoAwayFrame:
		pf.sink.pfGoAway(at, f.LastGoodStreamID, f.Status)
	}
}

func (pf *pfSession) open(at pfAt, f *spdy.SynStreamFrame) {
	s := &pfStream{id: f.StreamID, opened: at.T}
	reused := pf.stream(f.StreamID) != nil
	pf.streams[f.StreamID] = s
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
		r = pf.request(reqID, true, s.port, at.T)
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
			r = pf.request("stream "+strconv.FormatUint(uint64(f.StreamID), 10), false, s.port, at.T)
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
	half := f.Flags.Has(spdy.FlagFin)
	if half {
		s.fin[at.Dir] = true
	}
	pf.sink.pfOpened(pfOpened{pfAt: at, pfRef: s.ref(), Reused: reused, Headers: f.Headers, HalfClosed: half})
}

func (pf *pfSession) data(at pfAt, s *pfStream, c chunkBytes) {
	dir := at.Dir
	if s.typ == "data" && c.N > 0 {
		pf.sink.pfChunk(at, s.ref(), s.bytes[dir], c)
	}
	s.bytes[dir] += int64(c.N)
	if c.N == 0 {
		return
	}
	b := c.Head
	r := s.req
	if s.typ == "error" {
		if dir == tcpstream.ServerToClient {
			if room := maxErrorText - len(r.errText); room > 0 {
				r.errText = append(r.errText, b[:min(room, len(b))]...)
			}
			pf.sink.pfErrorText(pfData{pfAt: at, pfRef: s.ref(), B: b, N: c.N})
		}
		return
	}
	if line, ok := httpStartLine(b); ok {
		pf.sink.pfData(pfData{pfAt: at, pfRef: s.ref(), B: b, N: c.N, Line: line})
		s.shown[dir] = true
		return
	}
	if !s.shown[dir] {
		s.shown[dir] = true
		pf.sink.pfData(pfData{pfAt: at, pfRef: s.ref(), B: b, N: c.N})
	}
}

// dataStream returns the data stream a DATA frame coming in pieces
// belongs to, whose pieces go to pfChunk as they come (dataPiece), or nil:
// the frame's bytes are kept whole then (other streams, or one not seen
// opening).
func (pf *pfSession) dataStream(id uint32) *pfStream {
	if s := pf.stream(id); s != nil && s.typ == "data" {
		return s
	}
	return nil
}

// dataPiece passes a piece of a data stream's DATA frame (not its last)
// to pfChunk.
func (pf *pfSession) dataPiece(at pfAt, s *pfStream, f *spdy.DataFrame) {
	pf.sink.pfChunk(at, s.ref(), s.bytes[at.Dir]+int64(f.Start), chunkBytes{Data: f.Data, Partial: true})
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
	e := pfEnded{T: t, ID: r.id, HasID: r.hasID, Port: r.port, Took: t.Sub(r.opened), ErrText: string(r.errText), Reset: r.reset, Why: why}
	if r.dataS != nil {
		e.ToPod, e.FromPod = r.dataS.bytes[0], r.dataS.bytes[1]
		if !r.dataS.replied.IsZero() {
			// From the request's first SYN_STREAM to its data stream's reply.
			e.Setup, e.Replied = r.dataS.replied.Sub(r.opened), true
		}
	}
	e.ToPod += r.chBytes[0]
	e.FromPod += r.chBytes[1]
	pf.sink.pfEnded(e)
}

// finish ends every request still open (the connection closed or was
// reset, or the capture ended).
func (pf *pfSession) finish(t time.Time, why string) {
	for _, r := range pf.order {
		pf.end(r, t, why)
	}
}

// channelMessage follows the v4 channel protocol: one channel byte per
// message; the server starts each channel with the port, little endian.
func (pf *pfSession) channelMessage(dir tcpstream.Dir, t time.Time, off int64, f *websocket.Frame) {
	at := pfAt{dir, t, off}
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
			pf.sink.pfBadMessage(at, fmt.Errorf("base64 channel message: %v", err))
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
			pf.sink.pfChannelPort(at, ch, kind, port)
		}
	}
	r := pf.request(key, false, pf.chanPort[ch&^1], t)
	if ch%2 == 1 {
		if len(p) > 0 && dir == tcpstream.ServerToClient {
			r.errText = append(r.errText, p[:min(len(p), maxErrorText-len(r.errText))]...)
			pf.sink.pfChannelError(at, r.port, p)
		}
		return
	}
	r.chBytes[dir] += int64(len(p))
	if line, ok := httpStartLine(p); ok {
		pf.sink.pfChannelData(at, r.port, line, len(p))
	}
}

func sideName(d tcpstream.Dir) string {
	if d == tcpstream.ClientToServer {
		return "client"
	}
	return "server"
}
