package tcpstream

import (
	"net/netip"
	"sort"
	"time"

	"github.com/pftap/pftap/decode/packet"
)

// Dir is the direction of bytes on a connection.
type Dir uint8

// Directions. The client is the side that sent the SYN; when the handshake
// was not captured, the side with the higher (ephemeral-looking) port.
const (
	ClientToServer Dir = 0
	ServerToClient Dir = 1
)

func (d Dir) String() string {
	if d == ClientToServer {
		return "c>s"
	}
	return "s>c"
}

// Other returns the opposite direction.
func (d Dir) Other() Dir { return d ^ 1 }

// CloseKind says how a direction ended.
type CloseKind uint8

// How a direction of a connection ended.
const (
	ClosedFIN CloseKind = iota + 1 // an orderly FIN
	ClosedRST                      // a reset from either side
	ClosedEnd                      // the capture ended with the direction open
)

func (k CloseKind) String() string {
	switch k {
	case ClosedFIN:
		return "FIN"
	case ClosedRST:
		return "RST"
	case ClosedEnd:
		return "capture ended"
	}
	return "?"
}

// Conn is one TCP connection as seen by an Assembler.
type Conn struct {
	// ID numbers connections in the order they were first seen, from 1.
	ID int
	// Interface is the capture interface the connection was seen on.
	Interface int
	// Client and Server are the endpoints (see Dir for how they are told
	// apart).
	Client, Server netip.AddrPort
	// SawSYN is true when the connection's first captured packet was a SYN
	// or SYN-ACK: the capture holds it from its start.
	SawSYN bool
	// Refused is true when the server answered the client's SYN with a
	// RST, no SYN-ACK: nothing listened on the port.
	Refused bool
	// ResetBy is the direction whose sender reset the connection (its
	// first RST), when Reset.
	ResetBy Dir
	Reset   bool
	// Start is the time of the first packet.
	Start time.Time
	// User is for the handler's own state.
	User any

	dirs   [2]dirState
	closed bool
}

// Midstream reports whether direction d was joined after its start (no
// SYN seen for it), so its offset 0 is not the stream's first byte.
func (c *Conn) Midstream(d Dir) bool { return !c.dirs[d].sawSYN }

// Stats of one direction.
func (c *Conn) Stats(d Dir) DirStats { return c.dirs[d].stats }

// DirStats counts what one direction carried.
type DirStats struct {
	Packets       int
	Bytes         int64 // payload bytes delivered in order
	GapBytes      int64 // bytes never captured
	Retransmitted int   // segments wholly seen before
	// RetransmittedBytes are the payload bytes of those segments.
	RetransmittedBytes int64
	OutOfOrder         int   // segments that arrived ahead of a hole
	OverlapBytes       int64 // bytes trimmed as already delivered
	TruncatedBytes     int64 // bytes cut by the snap length (part of GapBytes)
}

type segment struct {
	seq  uint32
	t    time.Time
	data []byte
	fin  bool
	miss int // bytes announced but not captured after data
}

type dirState struct {
	started bool
	sawSYN  bool
	next    uint32 // next sequence number expected
	off     int64  // stream offset of next
	pending []segment
	pendBy  int
	finSeq  uint32
	finSeen bool
	closed  bool
	stats   DirStats
}

// Handler receives what an Assembler reassembles. Byte slices passed to it
// are only valid during the call.
type Handler interface {
	// Open is called once for each new connection, before anything else.
	Open(c *Conn, t time.Time)
	// Packet is called for every TCP packet of a connection, before the
	// bytes it carries are delivered (for segment-level views).
	Packet(c *Conn, d Dir, p *packet.Packet)
	// Data delivers bytes of direction d in order, starting at stream
	// offset off (0 is the first byte after the SYN).
	Data(c *Conn, d Dir, off int64, t time.Time, b []byte)
	// Gap reports n bytes at offset off that were never captured.
	Gap(c *Conn, d Dir, off, n int64, t time.Time)
	// Close reports the end of direction d.
	Close(c *Conn, d Dir, t time.Time, how CloseKind)
}

// MaxPendingBytes bounds the out-of-order bytes held per direction; past it
// the oldest hole is declared a gap.
const MaxPendingBytes = 4 << 20

// An Assembler turns captured TCP packets into ordered byte streams: it
// handles reordering, retransmission and overlap, and reports every hole it
// cannot fill as a gap at its offset.
type Assembler struct {
	h     Handler
	conns map[connKey]*Conn
	next  int
	// last is the connection of the previous packet, the map's entry for
	// its key: a transfer's packets come one connection at a time, and
	// matching them to it costs less than hashing their key.
	last *Conn
}

type connKey struct {
	iface int
	a, b  netip.AddrPort
}

// NewAssembler returns an Assembler that reports to h.
func NewAssembler(h Handler) *Assembler {
	return &Assembler{h: h, conns: make(map[connKey]*Conn)}
}

func keyOf(p *packet.Packet) connKey {
	a, b := p.Src, p.Dst
	if a.Compare(b) > 0 {
		a, b = b, a
	}
	return connKey{p.Interface, a, b}
}

func seqDiff(a, b uint32) int64 { return int64(int32(a - b)) }

// Add processes one packet. Packets must come in capture order.
func (as *Assembler) Add(p *packet.Packet) {
	c := as.last
	if c == nil || c.Interface != p.Interface ||
		!(p.Src == c.Client && p.Dst == c.Server || p.Src == c.Server && p.Dst == c.Client) {
		c = as.conns[keyOf(p)]
	}
	if c != nil && c.closed {
		k := keyOf(p)
		if !p.Flags.Has(packet.SYN) || p.Flags.Has(packet.ACK) {
			return // the last ACKs of a closed connection
		}
		delete(as.conns, k) // the 4-tuple is reused by a new connection
		c = nil
	}
	as.last = c
	if c == nil {
		if p.Flags.Has(packet.RST) && len(p.Payload) == 0 {
			return // a stray reset of a connection we never saw
		}
		as.next++
		c = &Conn{ID: as.next, Interface: p.Interface, Start: p.Time}
		switch {
		case p.Flags.Has(packet.SYN) && !p.Flags.Has(packet.ACK):
			c.Client, c.Server = p.Src, p.Dst
		case p.Flags.Has(packet.SYN | packet.ACK):
			c.Client, c.Server = p.Dst, p.Src
		case p.Src.Port() > p.Dst.Port():
			c.Client, c.Server = p.Src, p.Dst
		default:
			c.Client, c.Server = p.Dst, p.Src
		}
		c.SawSYN = p.Flags.Has(packet.SYN)
		as.conns[keyOf(p)] = c
		as.last = c
		as.h.Open(c, p.Time)
	}
	d := ClientToServer
	if p.Src != c.Client {
		d = ServerToClient
	}
	ds := &c.dirs[d]
	ds.stats.Packets++
	as.h.Packet(c, d, p)

	if p.Flags.Has(packet.SYN) {
		if !ds.started {
			ds.started, ds.sawSYN = true, true
			ds.next = p.Seq + 1
		}
		if len(p.Payload) == 0 && !p.Flags.Has(packet.FIN) {
			as.checkAck(c, d, p)
			return
		}
	}
	seq := p.Seq
	if p.Flags.Has(packet.SYN) {
		seq++
	}
	if !ds.started && (len(p.Payload) > 0 || p.Flags.Has(packet.FIN)) {
		ds.started = true
		ds.next = seq
	}
	if ds.started && !ds.closed && (len(p.Payload) > 0 || p.Missing > 0 || p.Flags.Has(packet.FIN)) {
		as.segment(c, d, segment{seq: seq, t: p.Time, data: p.Payload, fin: p.Flags.Has(packet.FIN), miss: p.Missing}, false)
	}
	as.checkAck(c, d, p)
	if p.Flags.Has(packet.RST) {
		if d == ServerToClient && !ds.sawSYN && c.dirs[ClientToServer].sawSYN && c.dirs[ClientToServer].stats.Bytes == 0 {
			c.Refused = true
		}
		if !c.Reset {
			c.Reset, c.ResetBy = true, d
		}
		for _, dd := range []Dir{ClientToServer, ServerToClient} {
			as.flush(c, dd, p.Time)
			as.closeDir(c, dd, p.Time, ClosedRST)
		}
	}
}

// checkAck declares a hole in the other direction a gap once the receiver
// acknowledged bytes beyond it: they were delivered, just not captured.
func (as *Assembler) checkAck(c *Conn, d Dir, p *packet.Packet) {
	if !p.Flags.Has(packet.ACK) {
		return
	}
	o := &c.dirs[d.Other()]
	if len(o.pending) == 0 || o.closed {
		return
	}
	if seqDiff(p.Ack, o.pending[0].seq) > 0 {
		as.fillHole(c, d.Other(), p.Time)
	}
}

// segment places a segment: delivers it if it is next, queues it if ahead.
func (as *Assembler) segment(c *Conn, d Dir, s segment, queued bool) {
	ds := &c.dirs[d]
	rel := seqDiff(s.seq, ds.next)
	end := rel + int64(len(s.data)) + int64(s.miss)
	if rel > 0 {
		if !queued {
			ds.stats.OutOfOrder++
			s.data = append([]byte(nil), s.data...)
		}
		as.enqueue(c, d, s)
		return
	}
	if end <= 0 && !(s.fin && end == 0 && !ds.finSeen) {
		if len(s.data) > 0 {
			ds.stats.Retransmitted++
			ds.stats.RetransmittedBytes += int64(len(s.data))
		}
		return
	}
	if rel < 0 {
		trim := -rel
		ds.stats.OverlapBytes += trim
		if trim >= int64(len(s.data)) {
			s.miss -= int(trim - int64(len(s.data)))
			s.data = nil
		} else {
			s.data = s.data[trim:]
		}
	}
	if len(s.data) > 0 {
		as.h.Data(c, d, ds.off, s.t, s.data)
		ds.off += int64(len(s.data))
		ds.stats.Bytes += int64(len(s.data))
		ds.next += uint32(len(s.data))
	}
	if s.miss > 0 {
		as.h.Gap(c, d, ds.off, int64(s.miss), s.t)
		ds.off += int64(s.miss)
		ds.stats.GapBytes += int64(s.miss)
		ds.stats.TruncatedBytes += int64(s.miss)
		ds.next += uint32(s.miss)
	}
	if s.fin {
		ds.finSeen = true
		ds.finSeq = ds.next
	}
	as.drain(c, d)
	if ds.finSeen && ds.next == ds.finSeq && len(ds.pending) == 0 {
		as.closeDir(c, d, s.t, ClosedFIN)
	}
}

func (as *Assembler) enqueue(c *Conn, d Dir, s segment) {
	ds := &c.dirs[d]
	i := sort.Search(len(ds.pending), func(i int) bool { return seqDiff(ds.pending[i].seq, s.seq) > 0 })
	ds.pending = append(ds.pending, segment{})
	copy(ds.pending[i+1:], ds.pending[i:])
	ds.pending[i] = s
	ds.pendBy += len(s.data)
	for ds.pendBy > MaxPendingBytes && len(ds.pending) > 0 {
		as.fillHole(c, d, s.t)
	}
}

// drain delivers queued segments that have become next.
func (as *Assembler) drain(c *Conn, d Dir) {
	ds := &c.dirs[d]
	for len(ds.pending) > 0 && seqDiff(ds.pending[0].seq, ds.next) <= 0 {
		s := ds.pending[0]
		ds.pending = ds.pending[1:]
		ds.pendBy -= len(s.data)
		as.segment(c, d, s, true)
	}
}

// fillHole reports the hole before the first queued segment as a gap and
// delivers what follows it.
func (as *Assembler) fillHole(c *Conn, d Dir, t time.Time) {
	ds := &c.dirs[d]
	if len(ds.pending) == 0 {
		return
	}
	n := seqDiff(ds.pending[0].seq, ds.next)
	if n > 0 {
		as.h.Gap(c, d, ds.off, n, t)
		ds.off += n
		ds.stats.GapBytes += n
		ds.next = ds.pending[0].seq
	}
	as.drain(c, d)
}

func (as *Assembler) flush(c *Conn, d Dir, t time.Time) {
	for len(c.dirs[d].pending) > 0 {
		as.fillHole(c, d, t)
	}
}

func (as *Assembler) closeDir(c *Conn, d Dir, t time.Time, how CloseKind) {
	ds := &c.dirs[d]
	if ds.closed {
		return
	}
	ds.closed = true
	ds.pending = nil
	as.h.Close(c, d, t, how)
	if c.dirs[d.Other()].closed {
		c.closed = true
	}
}

// Forget drops the connection between a and b on interface iface,
// without a callback: what is held of it is freed, and a later packet of
// its 4-tuple begins a new connection. It returns the connection, or nil
// when there was none.
func (as *Assembler) Forget(iface int, a, b netip.AddrPort) *Conn {
	if a.Compare(b) > 0 {
		a, b = b, a
	}
	k := connKey{iface, a, b}
	c := as.conns[k]
	if c == nil {
		return nil
	}
	delete(as.conns, k)
	if as.last == c {
		as.last = nil
	}
	c.dirs = [2]dirState{}
	c.closed = true
	return c
}

// Flush ends the input: every hole still open becomes a gap and every
// connection still open is closed with ClosedEnd, in the order the
// connections were first seen.
func (as *Assembler) Flush(t time.Time) {
	conns := make([]*Conn, 0, len(as.conns))
	for _, c := range as.conns {
		conns = append(conns, c)
	}
	sort.Slice(conns, func(i, j int) bool { return conns[i].ID < conns[j].ID })
	for _, c := range conns {
		as.FlushConn(c, t)
	}
	clear(as.conns)
	as.last = nil
}

// FlushConn ends the input of one connection, as Flush does for all: its
// open holes become gaps and its open directions close with ClosedEnd. A
// connection already closed is left as it is.
func (as *Assembler) FlushConn(c *Conn, t time.Time) {
	for _, d := range []Dir{ClientToServer, ServerToClient} {
		as.flush(c, d, t)
		as.closeDir(c, d, t, ClosedEnd)
	}
}
