package agent

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/gopacket/gopacket"

	"github.com/pftap/pftap/capture"
	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/decode/packet"
	"github.com/pftap/pftap/leg"
	"github.com/pftap/pftap/timeline"
)

// A tap is one of a session's legs on the node: its capture, the gate
// that holds back each new connection until the matcher (match.go) knows
// whether it is trace's, the decoding of the connections that are (the same
// decoder pftap lab runs on each leg), and what it counts.
type tap struct {
	s    *session
	idx  int
	lg   capture.Leg
	kind leg.ID
	src  *capture.Source

	mu    sync.Mutex
	flows map[flowKey]*cand
	// undecided are the connections held back, in the order they began.
	undecided []*cand
	// s1 decodes held connections for what decides them (nil on the TLS
	// leg, decided by time alone); s2 decodes trace's own.
	s1, s2 *decode.Decoder
	corr   *timeline.Correlator
	p, q   packet.Packet
	cur    *cand     // the connection whose packet s1 decodes
	curT   time.Time // the time of the packet s2 decodes
	last   time.Time // the latest packet's
	recs   []decode.TLSRecord
	st     LegStatus
}

type flowKey struct{ a, b netip.AddrPort }

func keyOf(p *packet.Packet) flowKey {
	a, b := p.Src, p.Dst
	if a.Compare(b) > 0 {
		a, b = b, a
	}
	return flowKey{a, b}
}

type candState uint8

const (
	undecided candState = iota
	ours
	leftOut
)

// cand is one connection on a leg, and what is known of it.
type cand struct {
	key   flowKey
	first time.Time
	state candState
	held  []heldPkt
	bytes int // held
	// How it ended, as its packets' flags say.
	fin    [2]bool
	rst    bool
	client netip.AddrPort
	ended  time.Time
	// What stage 1 found: SPDY bytes, the upgrade's answer (L3); the
	// first bytes each way (L4, the witness).
	spdy   [2]candSPDY
	status int
	tls    bool
	closes int
	prefix [2][]byte
	// ambiguous: could be trace's as well as another connection.
	ambiguous bool
}

type heldPkt struct {
	ts   time.Time
	data []byte
	orig int
}

// maxHeld bounds what one connection, and every held connection of a
// session together, may hold back while undecided.
const (
	maxHeld      = 16 << 20
	maxHeldTotal = 64 << 20
)

func (c *cand) closed() bool { return c.rst || c.fin[0] && c.fin[1] }

func newTap(s *session, idx int, lg capture.Leg, src *capture.Source) *tap {
	t := &tap{s: s, idx: idx, lg: lg, kind: lg.ID, src: src, flows: map[flowKey]*cand{}, corr: timeline.NewCorrelator()}
	t.corr.Digests = true
	ifs := []packet.Interface{{Index: 0, Name: lg.Name, Leg: lg.ID}}
	t.s2 = decode.NewDecoder(decode.Options{Verbosity: s.req.Verbosity, Chunks: t.chunk, Records: t.record}, t.event)
	t.s2.SetInterfaces(ifs)
	switch t.kind {
	case leg.L3:
		t.s1 = decode.NewDecoder(decode.Options{SPDYBytes: t.stage1SPDY, Records: func(*decode.TLSRecord) {
			if t.cur != nil {
				t.cur.tls = true
			}
		}}, t.stage1Event)
	case leg.L4, leg.Witness:
		t.s1 = decode.NewDecoder(decode.Options{Chunks: t.stage1Chunk}, t.stage1Event)
	}
	if t.s1 != nil {
		t.s1.SetInterfaces(ifs)
	}
	return t
}

// frame takes one captured frame (Ethernet), data only valid during the
// call.
func (t *tap) frame(data []byte, ci gopacket.CaptureInfo) {
	ts := ci.Timestamp.Add(t.s.a.opts.ClockOffset)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.st.Packets++
	t.st.Bytes += uint64(ci.Length)
	if ts.After(t.last) {
		t.last = ts
	}
	p := &t.p
	if packet.Decode(packet.LinkEthernet, data, p) != nil {
		return
	}
	p.Time, p.Interface = ts, 0
	k := keyOf(p)
	c := t.flows[k]
	if c != nil && c.state != undecided && c.closed() && p.Flags.Has(packet.SYN) && !p.Flags.Has(packet.ACK) {
		c = nil // the 4-tuple taken by a new connection
	}
	if c == nil {
		c = &cand{key: k, first: ts, client: p.Src}
		if p.Flags.Has(packet.SYN | packet.ACK) {
			c.client = p.Dst
		}
		t.flows[k] = c
		switch {
		case t.s.m.nodeWide:
			c.state = ours
		case !p.Flags.Has(packet.SYN) || p.Flags.Has(packet.ACK):
			// It began before the session did, so before any of trace's
			// upgrades: not trace's.
			c.state = leftOut
			t.st.LeftOutConns++
		default:
			t.undecided = append(t.undecided, c)
		}
	}
	dir := 0
	if p.Src != c.client {
		dir = 1
	}
	if p.Flags.Has(packet.RST) {
		c.rst = true
	}
	if p.Flags.Has(packet.FIN) {
		c.fin[dir] = true
	}
	if c.closed() && c.ended.IsZero() {
		c.ended = ts
	}
	switch c.state {
	case ours:
		t.feed(p, data, ci.Length)
	case leftOut:
		t.st.LeftOutPackets++
	default:
		if c.bytes+len(data) > maxHeld || t.s.held.Load()+int64(len(data)) > maxHeldTotal {
			c.ambiguous = true
			t.leaveOut(c)
			t.st.LeftOutPackets++
			return
		}
		c.held = append(c.held, heldPkt{ts: ts, data: append([]byte(nil), data...), orig: ci.Length})
		c.bytes += len(data)
		t.s.held.Add(int64(len(data)))
		if t.s1 != nil {
			t.cur = c
			t.s1.Add(p)
			t.cur = nil
		}
		t.decide(c, ts)
	}
}

// feed decodes a packet of trace's session, and sends its frame when
// trace records.
func (t *tap) feed(p *packet.Packet, data []byte, orig int) {
	t.curT = p.Time
	t.s2.Add(p)
	if t.s.req.Frames {
		if t.s.out.frame(t.idx, p.Time, orig, data, headerLen(data, p)) {
			t.st.Shortened++
		}
	}
}

// headerLen is how many bytes of data come before p's payload (which
// aliases data).
func headerLen(data []byte, p *packet.Packet) int {
	h := cap(data) - cap(p.Payload)
	if p.Payload == nil || h < 0 || h > len(data) {
		return len(data)
	}
	return h
}

// reevaluate decides what the connections held back can be decided now
// (trace told the agent more, another leg found more).
func (t *tap) reevaluate(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range append([]*cand(nil), t.undecided...) {
		if c.state == undecided {
			t.decide(c, now)
		}
	}
	// Forget connections that ended a while ago.
	for k, c := range t.flows {
		if c.state != undecided && !c.ended.IsZero() && now.Sub(c.ended) > 30*time.Second {
			delete(t.flows, k)
		}
	}
}

// decide asks the matcher about a connection held back and acts on the
// answer.
func (t *tap) decide(c *cand, now time.Time) {
	var v candState
	switch t.kind {
	case leg.L3:
		v = t.decideL3(c, now)
	case leg.L2Wire:
		v = t.decideL2(c, now)
	case leg.L4, leg.Witness:
		v = t.decideL4(c, now)
	default:
		v = ours
	}
	switch v {
	case ours:
		t.take(c)
	case leftOut:
		t.leaveOut(c)
	}
}

// take makes a held connection trace's: its packets are decoded (and
// sent) in the order they came, and every later one as it comes.
func (t *tap) take(c *cand) {
	t.drop(c)
	c.state = ours
	held := c.held
	c.held, c.bytes = nil, 0
	for _, h := range held {
		t.s.held.Add(-int64(len(h.data)))
		if packet.Decode(packet.LinkEthernet, h.data, &t.q) != nil {
			continue
		}
		t.q.Time, t.q.Interface = h.ts, 0
		t.feed(&t.q, h.data, h.orig)
	}
}

// leaveOut leaves a connection out: what it held is dropped, and it is
// counted.
func (t *tap) leaveOut(c *cand) {
	t.drop(c)
	c.state = leftOut
	t.st.LeftOutConns++
	if c.ambiguous {
		t.st.Ambiguous++
	}
	t.st.LeftOutPackets += uint64(len(c.held))
	for _, h := range c.held {
		t.s.held.Add(-int64(len(h.data)))
	}
	c.held, c.bytes = nil, 0
	c.spdy, c.prefix = [2]candSPDY{}, [2][]byte{}
}

// drop takes a decided connection off the undecided list and out of
// stage 1.
func (t *tap) drop(c *cand) {
	for i, u := range t.undecided {
		if u == c {
			t.undecided = append(t.undecided[:i], t.undecided[i+1:]...)
			break
		}
	}
	if t.s1 != nil {
		t.s1.Forget(0, c.key.a, c.key.b)
	}
}

// Stage 1's hooks: what decides a held connection.

func (t *tap) stage1SPDY(b *decode.SPDYBytes) {
	if t.cur == nil || b.Midstream {
		return
	}
	d := 0
	if b.Dir == decode.FromServer {
		d = 1
	}
	t.cur.spdy[d].add(b.Offset, b.Data)
}

func (t *tap) stage1Chunk(ch *decode.Chunk) {
	if t.cur == nil || ch.SPDY {
		return
	}
	d := 0
	if ch.Dir == decode.FromServer {
		d = 1
	}
	p := &t.cur.prefix[d]
	if ch.Offset == int64(len(*p)) && len(*p) < prefixKeep {
		*p = append(*p, ch.Data[:min(len(ch.Data), prefixKeep-len(*p))]...)
	}
}

func (t *tap) stage1Event(e *decode.Event) {
	c := t.cur
	if c == nil {
		return
	}
	switch e.Kind {
	case decode.KindHTTPResponse:
		if c.status == 0 {
			c.status = e.Status
		}
	case decode.KindWarning:
		if e.Type == decode.WarnTLSToPlain {
			c.tls = true
		}
	case decode.KindClose:
		c.closes++
		if e.Reason == "refused" || e.Reason == "RST" {
			c.closes = 2
		}
	}
}

// Stage 2's hooks: trace's session, decoded.

func (t *tap) event(e *decode.Event) {
	if t.kind == leg.L3 && e.Kind == decode.KindStream && e.StreamType == "data" && e.Type == "SYN_STREAM" && e.RequestID != nil {
		t.s.m.streamOpened(e.Conn, *e.RequestID, e.Time)
	}
	if e.Kind == decode.KindGap {
		// A gap on a leg that dropped: say why.
		t.pollDrops()
		if t.st.Drops > 0 {
			e.Text += fmt.Sprintf(" (the agent's capture of this leg has dropped %d packets so far: the kernel's ring was full)", t.st.Drops)
		}
	}
	at := t.curT
	if at.IsZero() || e.Time.After(at) {
		at = e.Time
	}
	t.s.out.event(t.idx, at, e)
}

func (t *tap) chunk(ch *decode.Chunk) {
	t.corr.Chunk(ch)
	if t.kind == leg.L3 && ch.SPDY && ch.RequestID != "" {
		d := 0
		if ch.Dir == decode.FromServer {
			d = 1
		}
		off, data := ch.Offset, ch.Data
		if !ch.Partial {
			off += int64(ch.Len - len(ch.Data))
		}
		t.s.m.streamData(ch.Conn, ch.RequestID, d, off, data)
	}
}

func (t *tap) record(r *decode.TLSRecord) { t.recs = append(t.recs, *r) }

// pollDrops adds the kernel's drops since the last poll.
func (t *tap) pollDrops() {
	if t.src == nil {
		return
	}
	if st, err := t.src.Stats(); err == nil {
		t.st.Drops += st.Drops
	}
}

// status is the leg's counters, with its drops polled and its pending
// records handed over (to be sent before the status).
func (t *tap) status() (LegStatus, []decode.TLSRecord) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pollDrops()
	st := t.st
	st.Conns, st.Requests = t.s2.Pending()
	recs := t.recs
	t.recs = nil
	return st, recs
}

// finish decides what is still held, as well as it can be decided with
// everything known, and finishes the decoding of trace's session. What is
// still undecided then is left out as ambiguous.
func (t *tap) finish() (decode.Summary, LegStatus, []decode.TLSRecord) {
	t.mu.Lock()
	defer t.mu.Unlock()
	end := t.last.Add(time.Hour) // every window has closed, every wait is over
	for _, c := range append([]*cand(nil), t.undecided...) {
		if c.state == undecided {
			t.decide(c, end)
		}
	}
	for _, c := range append([]*cand(nil), t.undecided...) {
		if c.state == undecided {
			c.ambiguous = true
			t.leaveOut(c)
		}
	}
	t.curT = time.Time{}
	sum := t.s2.Finish()
	t.pollDrops()
	st := t.st
	recs := t.recs
	t.recs = nil
	return sum, st, recs
}
