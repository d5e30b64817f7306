package timeline

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"sort"
	"strings"
	"time"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/leg"
)

// LegTimes is when a direction of one request crossed one leg.
type LegTimes struct {
	Leg string `json:"leg"`
	// LegID is the leg's place in the chain.
	LegID leg.ID `json:"leg_id,omitempty"`
	// At is the end of its connection the leg is tapped at.
	At leg.End `json:"-"`
	// Conn is the connection on that leg.
	Conn int `json:"conn"`
	// First and Last are when the first and the last byte appeared there.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	Bytes int64     `json:"bytes"`
	// Digest is the CRC-32 (IEEE) of every byte of this direction on this
	// leg, in order, in hex (only when the Correlator keeps digests): equal
	// digests and byte counts on every leg mean the same bytes crossed each
	// of them.
	Digest string `json:"digest,omitempty"`
	// FirstChunk is the size of the first piece of payload: on a SPDY leg
	// the first DATA frame's payload.
	FirstChunk int `json:"first_chunk,omitempty"`
	// TLS marks a leg seen only as TLS records (AddTLSLegs): placed by
	// time and record size, with no bytes or digest of its own.
	TLS bool `json:"tls,omitempty"`
}

// DirHops is one direction of a request across the chain, legs in the
// order the bytes crossed them.
type DirHops struct {
	Bytes int64      `json:"bytes"`
	Legs  []LegTimes `json:"legs"`
	// FirstByte[i] and LastByte[i] are the latency of the hop from Legs[i]
	// to Legs[i+1]: when byte 0 (and the last byte) appeared on the next leg
	// minus when it appeared on this one. They add up to Total and
	// TotalLast.
	FirstByte []time.Duration `json:"first_byte_ns"`
	LastByte  []time.Duration `json:"last_byte_ns"`
	Total     time.Duration   `json:"total_ns"`
	TotalLast time.Duration   `json:"total_last_ns"`
}

// Hops is one port-forward request followed across every leg it crossed.
type Hops struct {
	// Time is when the request's first byte appeared on its first leg, and
	// Conn its connection there.
	Time      time.Time `json:"ts"`
	Conn      int       `json:"conn"`
	RequestID string    `json:"request_id"`
	// What is the HTTP request line the request's bytes towards the pod
	// begin with ("GET /bytes?n=1000"), when they begin with one.
	What    string  `json:"what,omitempty"`
	ToPod   DirHops `json:"to_pod"`
	FromPod DirHops `json:"from_pod"`
}

// Correlator aligns the payload of port-forward requests across legs by
// byte offset: DATA of the data stream with the same requestID on the SPDY
// legs (L1 to L3), and the TCP connections on the other legs (the user's
// connection to the local port, the pod's lo) matched by their payload
// and timing. Feed it every decode.Chunk (decode.Options.Chunks), then call
// Result.
type Correlator struct {
	// Digests makes the Correlator hash every byte of every flow (see
	// LegTimes.Digest). It costs a pass over the payload.
	Digests bool
	spdy    map[streamKey]*flow
	tcp     map[connKey]*flow
	spdyLeg map[string]bool
	// pending digests the pieces of SPDY DATA frames still arriving
	// (decode.Chunk.Partial), by stream and direction.
	pending map[pendingKey]pendingCRC
}

type pendingKey struct {
	streamKey
	dir int
}

// pendingCRC is a flow's digest with a frame's first pieces in it, and
// the offset its next piece must have to continue it.
type pendingCRC struct {
	crc  uint32
	next int64
}

type streamKey struct {
	leg  string
	conn int
	req  string
}

type connKey struct {
	leg  string
	conn int
}

// flow is what one direction pair of a stream or connection carried.
type flow struct {
	leg    string
	legID  leg.ID
	legAt  leg.End
	conn   int
	req    string
	first  [2]time.Time
	last   [2]time.Time
	bytes  [2]int64
	prefix [2][]byte
	// crc is the CRC-32 (IEEE) of the bytes so far: done with the CPU's
	// carry-less multiply, it is the fastest digest the standard library
	// has (36 GB/s on this project's machine, where CRC-32C runs at 22 and
	// CRC-64 at ~1), and every byte of every leg goes through it.
	crc      [2]uint32
	digested [2]bool
	// firstLen is the size of the first chunk (a DATA frame's payload on
	// SPDY legs), which identifies its TLS record on a wire leg.
	firstLen [2]int
}

// digest is the flow's digest in direction d, and whether it has one.
func (f *flow) digest(d int) (uint32, bool) { return f.crc[d], f.digested[d] }

// NewCorrelator returns an empty Correlator.
func NewCorrelator() *Correlator {
	return &Correlator{spdy: map[streamKey]*flow{}, tcp: map[connKey]*flow{}, spdyLeg: map[string]bool{}, pending: map[pendingKey]pendingCRC{}}
}

func dirIndex(d decode.Dir) int {
	if d == decode.ToServer {
		return 0
	}
	return 1
}

// Chunk records one chunk. It keeps a few bytes per flow, not the chunk.
func (c *Correlator) Chunk(ch *decode.Chunk) {
	var f *flow
	if ch.SPDY {
		if ch.RequestID == "" {
			return
		}
		k := streamKey{ch.Leg, ch.Conn, ch.RequestID}
		if ch.Partial {
			c.partial(k, ch)
			return
		}
		c.spdyLeg[ch.Leg] = true
		if f = c.spdy[k]; f == nil {
			f = &flow{leg: ch.Leg, legID: ch.LegID, legAt: ch.LegAt, conn: ch.Conn, req: ch.RequestID}
			c.spdy[k] = f
		}
	} else {
		k := connKey{ch.Leg, ch.Conn}
		if f = c.tcp[k]; f == nil {
			f = &flow{leg: ch.Leg, legID: ch.LegID, legAt: ch.LegAt, conn: ch.Conn}
			c.tcp[k] = f
		}
	}
	d := dirIndex(ch.Dir)
	if f.first[d].IsZero() {
		f.first[d] = ch.Time
		f.firstLen[d] = ch.Len
	}
	f.last[d] = ch.Time
	f.bytes[d] += int64(ch.Len)
	if c.Digests {
		base := f.crc[d]
		if ch.SPDY && len(c.pending) > 0 {
			// A frame that came in pieces: its earlier pieces are in the
			// pending digest when they continue the flow up to this one.
			pk := pendingKey{streamKey{ch.Leg, ch.Conn, ch.RequestID}, d}
			if p, ok := c.pending[pk]; ok {
				if p.next == ch.Offset+int64(ch.Len-len(ch.Data)) {
					base = p.crc
				}
				delete(c.pending, pk)
			}
		}
		f.crc[d] = crc32.Update(base, crc32.IEEETable, ch.Data)
		f.digested[d] = true
	}
	if len(f.prefix[d]) < decode.ChunkPrefix {
		f.prefix[d] = append(f.prefix[d], ch.Prefix[:min(len(ch.Prefix), decode.ChunkPrefix-len(f.prefix[d]))]...)
	}
}

// partial digests a piece of a SPDY DATA frame that is still arriving;
// the frame's last piece (a whole Chunk) counts it.
func (c *Correlator) partial(k streamKey, ch *decode.Chunk) {
	if !c.Digests {
		return
	}
	pk := pendingKey{k, dirIndex(ch.Dir)}
	p, ok := c.pending[pk]
	if !ok || p.next != ch.Offset {
		// A frame's first piece: on top of what the flow has so far.
		p = pendingCRC{}
		if f := c.spdy[k]; f != nil {
			p.crc = f.crc[pk.dir]
		}
	}
	p.crc = crc32.Update(p.crc, crc32.IEEETable, ch.Data)
	p.next = ch.Offset + int64(len(ch.Data))
	c.pending[pk] = p
}

// Merge adds what other gathered to c, numbering other's connections with
// conn: a Correlator per leg, fed where that leg is decoded
// (decode.LegSet), is merged into one before Result, with the leg's own
// connection numbers made the set's. Flows of other that c holds already
// (the same leg, connection and request) replace c's.
func (c *Correlator) Merge(other *Correlator, conn func(leg string, local int) int) {
	for _, f := range other.spdy {
		f.conn = conn(f.leg, f.conn)
		c.spdy[streamKey{f.leg, f.conn, f.req}] = f
	}
	for _, f := range other.tcp {
		f.conn = conn(f.leg, f.conn)
		c.tcp[connKey{f.leg, f.conn}] = f
	}
	for leg := range other.spdyLeg {
		c.spdyLeg[leg] = true
	}
	c.Digests = c.Digests || other.Digests
}

// Flow is what one direction pair of a data stream (SPDY) or of a TCP
// connection carried on one leg, as a Correlator keeps it: the form in
// which a Correlator fed elsewhere (an agent, on the node's legs) is sent
// to be merged (Flows, AddFlows). Index 0 is towards the pod.
type Flow struct {
	Leg       string       `json:"leg"`
	LegID     leg.ID       `json:"leg_id,omitempty"`
	LegAt     leg.End      `json:"leg_at,omitempty"`
	Conn      int          `json:"conn"`
	RequestID string       `json:"request_id,omitempty"`
	SPDY      bool         `json:"spdy,omitempty"`
	First     [2]time.Time `json:"first"`
	Last      [2]time.Time `json:"last"`
	Bytes     [2]int64     `json:"bytes"`
	Prefix    [2][]byte    `json:"prefix"`
	CRC       [2]uint32    `json:"crc"`
	Digested  [2]bool      `json:"digested"`
	FirstLen  [2]int       `json:"first_len"`
}

// Flows returns every flow c holds, SPDY data streams first, each group
// by leg, connection and request (a stable order).
func (c *Correlator) Flows() []Flow {
	out := make([]Flow, 0, len(c.spdy)+len(c.tcp))
	put := func(f *flow, spdy bool) {
		out = append(out, Flow{Leg: f.leg, LegID: f.legID, LegAt: f.legAt, Conn: f.conn, RequestID: f.req, SPDY: spdy, First: f.first, Last: f.last, Bytes: f.bytes,
			Prefix: [2][]byte{bytes.Clone(f.prefix[0]), bytes.Clone(f.prefix[1])}, CRC: f.crc, Digested: f.digested, FirstLen: f.firstLen})
	}
	for _, f := range c.spdy {
		put(f, true)
	}
	for _, f := range c.tcp {
		put(f, false)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		switch {
		case a.SPDY != b.SPDY:
			return a.SPDY
		case a.Leg != b.Leg:
			return a.Leg < b.Leg
		case a.Conn != b.Conn:
			return a.Conn < b.Conn
		}
		return a.RequestID < b.RequestID
	})
	return out
}

// AddFlows adds flows another Correlator gave (Flows), as if c had been
// fed their chunks: a flow of the same leg, connection and request
// replaces c's.
func (c *Correlator) AddFlows(fs []Flow) {
	for _, x := range fs {
		f := &flow{leg: x.Leg, legID: x.LegID, legAt: x.LegAt, conn: x.Conn, req: x.RequestID, first: x.First, last: x.Last, bytes: x.Bytes, crc: x.CRC, digested: x.Digested, firstLen: x.FirstLen}
		for d := range f.prefix {
			f.prefix[d] = bytes.Clone(x.Prefix[d][:min(len(x.Prefix[d]), decode.ChunkPrefix)])
			if f.digested[d] {
				c.Digests = true
			}
		}
		if x.SPDY {
			c.spdyLeg[x.Leg] = true
			c.spdy[streamKey{x.Leg, x.Conn, x.RequestID}] = f
		} else {
			c.tcp[connKey{x.Leg, x.Conn}] = f
		}
	}
}

// SPDYLeg reports whether leg carried SPDY port-forward streams (and not
// only TCP payload or TLS records).
func (c *Correlator) SPDYLeg(leg string) bool { return c.spdyLeg[leg] }

// Result returns every request seen on at least one SPDY leg, ordered by
// request ID, with the TCP connections of the other legs matched to it.
func (c *Correlator) Result() []Hops {
	// Requests: the same requestID on each SPDY leg. With digests, also
	// the same bytes each way: sessions that reuse request IDs (every
	// client numbers from 0) stay apart when a leg sees several of them,
	// as a node's legs do. Otherwise, when a leg holds the ID on several
	// connections, the earliest is taken.
	// A request ID seen once per leg (one session across the chain, as
	// pftap lab and trace see it) is one request, whatever its bytes (a
	// transfer cut short leaves each leg with a different amount). Only
	// where a leg holds an ID more than once (several sessions) do the
	// digests keep them apart.
	perLeg := map[string]map[string]int{}
	for _, f := range c.spdy {
		if perLeg[f.req] == nil {
			perLeg[f.req] = map[string]int{}
		}
		perLeg[f.req][f.leg]++
	}
	shared := func(req string) bool {
		for _, n := range perLeg[req] {
			if n > 1 {
				return true
			}
		}
		return false
	}
	reqs := map[string][]*flow{}
	reqOf := map[string]string{}
	for _, f := range c.spdy {
		key := f.req
		if c.Digests && shared(f.req) {
			key = fmt.Sprintf("%s\x00%08x%08x", f.req, f.crc[0], f.crc[1])
		}
		reqs[key] = append(reqs[key], f)
		reqOf[key] = f.req
	}
	ids := make([]string, 0, len(reqs))
	for id, fs := range reqs {
		ids = append(ids, id)
		sort.Slice(fs, func(i, j int) bool { return fs[i].first[0].Before(fs[j].first[0]) })
		seen := map[string]bool{}
		kept := fs[:0]
		for _, f := range fs {
			if !seen[f.leg] {
				seen[f.leg] = true
				kept = append(kept, f)
			}
		}
		reqs[id] = kept
	}
	sort.Slice(ids, func(i, j int) bool {
		if reqOf[ids[i]] != reqOf[ids[j]] {
			return numLess(reqOf[ids[i]], reqOf[ids[j]])
		}
		return reqs[ids[i]][0].first[0].Before(reqs[ids[j]][0].first[0])
	})

	// TCP connections on legs without SPDY (the user's connection to the
	// local port before the chain, the pod's lo after it) are matched to
	// requests (see matchTCP).
	byLeg := map[string][]*flow{}
	for _, f := range c.tcp {
		if !c.spdyLeg[f.leg] && f.bytes[0] > 0 {
			byLeg[f.leg] = append(byLeg[f.leg], f)
		}
	}
	legs := make([]string, 0, len(byLeg))
	for l := range byLeg {
		legs = append(legs, l)
	}
	sort.Strings(legs)
	for _, l := range legs {
		for id, t := range matchTCP(c.Digests, byLeg[l], ids, reqs) {
			reqs[id] = append(reqs[id], t)
		}
	}

	out := make([]Hops, 0, len(ids))
	for _, id := range ids {
		fs := reqs[id]
		h := Hops{RequestID: reqOf[id]}
		for _, f := range fs {
			if w := requestLine(f.prefix[0]); w != "" {
				h.What = w
				break
			}
		}
		h.ToPod = direction(fs, 0)
		h.FromPod = direction(fs, 1)
		if len(h.ToPod.Legs) > 0 {
			h.Time, h.Conn = h.ToPod.Legs[0].First, h.ToPod.Legs[0].Conn
		}
		out = append(out, h)
	}
	return out
}

// matchTCP matches the connections of one leg without SPDY to requests.
// A connection carries one request (a port-forward stream is one TCP
// connection at each end), so each request takes at most one connection
// of the leg. What identifies it there is its bytes (sameBytes) and
// causality: a leg before the chain (the user's connection to the local
// port) carries the bytes towards the pod before the first SPDY leg does
// and the answer after the last one does; a leg after the chain (the pod's
// lo), towards the pod after the last SPDY leg, back before the first. For
// each direction that holds of the first byte and of the last. When
// payloads repeat (the same request many times at once), several
// connections carry the same bytes: only a matching in which every pair is
// possible both ways is taken, found greedily in time order, each request
// given the possible connection nearest to it in time; a request no
// possible connection is left for shows without that leg, never with
// another request's. Which side of the chain a leg is on comes from its
// ID; for a leg without one (a capture pftap did not make), from whether
// its first connection began before any SPDY data.
func matchTCP(digests bool, conns []*flow, ids []string, reqs map[string][]*flow) map[string]*flow {
	if len(conns) == 0 || len(ids) == 0 {
		return nil
	}
	// The SPDY legs at the two ends of the chain, for each request: the
	// lowest in chain order and the highest (by time when legs have no
	// IDs).
	type ends struct{ first, last *flow }
	edge := map[string]ends{}
	var spdyStart time.Time
	for _, id := range ids {
		var e ends
		for _, f := range reqs[id] {
			if spdyStart.IsZero() || f.first[0].Before(spdyStart) && !f.first[0].IsZero() {
				spdyStart = f.first[0]
			}
			if e.first == nil || chainBefore(f, e.first) {
				e.first = f
			}
			if e.last == nil || chainBefore(e.last, f) {
				e.last = f
			}
		}
		edge[id] = e
	}
	sort.Slice(conns, func(i, j int) bool { return conns[i].first[0].Before(conns[j].first[0]) })
	before := !conns[0].first[0].After(spdyStart)
	if o := conns[0].legID.Order(); o >= 0 {
		before = o < leg.L1.Order()
	}
	// possible says whether connection t can carry request id, its taps'
	// stamps allowed to be off by tol.
	possible := func(id string, t *flow, tol time.Duration) bool {
		e := edge[id]
		// later says whether a is later than b by more than tol.
		later := func(a, b time.Time) bool { return a.Sub(b) > tol }
		// A direction's last bytes are the same byte only when both
		// carried as many (a transfer cut short does not).
		sameLast := func(x, y *flow, d int) bool { return x.bytes[d] == y.bytes[d] }
		if before {
			f := e.first
			if !sameBytes(digests, f, t) {
				return false
			}
			// Towards the pod: here first, then the first SPDY leg.
			if later(t.first[0], f.first[0]) || sameLast(t, f, 0) && later(t.last[0], f.last[0]) {
				return false
			}
			// Back: the first SPDY leg first, then here.
			if t.bytes[1] > 0 && f.bytes[1] > 0 && (later(f.first[1], t.first[1]) || sameLast(t, f, 1) && later(f.last[1], t.last[1])) {
				return false
			}
			return true
		}
		f := e.last
		if !sameBytes(digests, f, t) {
			return false
		}
		if later(f.first[0], t.first[0]) || sameLast(t, f, 0) && later(f.last[0], t.last[0]) {
			return false
		}
		if t.bytes[1] > 0 && f.bytes[1] > 0 && (later(t.first[1], f.first[1]) || sameLast(t, f, 1) && later(t.last[1], f.last[1])) {
			return false
		}
		return true
	}
	// Requests in the order their bytes reached this end of the chain;
	// each takes, among the possible connections not taken, the one
	// nearest in time to its SPDY leg towards the pod (before the chain:
	// the latest that began before it; after it: the earliest after it),
	// and of those the one whose answer fits tightest.
	at := func(id string) time.Time {
		if before {
			return edge[id].first.first[0]
		}
		return edge[id].last.first[0]
	}
	order := append([]string(nil), ids...)
	sort.SliceStable(order, func(i, j int) bool { return at(order[i]).Before(at(order[j])) })
	if !before {
		// After the chain, a request's candidates began after it: taken
		// from the latest request back, each takes the earliest.
		for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
			order[i], order[j] = order[j], order[i]
		}
	}
	taken := make([]bool, len(conns))
	out := map[string]*flow{}
	// Strictly first; then, for the requests left, with the taps' stamps
	// allowed to be off by stampSlack (an in-process tap's frame stamped
	// late because it waited behind another connection's).
	for _, tol := range []time.Duration{0, stampSlack} {
		for _, id := range order {
			if out[id] != nil {
				continue
			}
			best := -1
			for k, t := range conns {
				if taken[k] || !possible(id, t, tol) {
					continue
				}
				if best < 0 || tighter(conns[best], t, before) {
					best = k
				}
			}
			if best >= 0 {
				taken[best] = true
				out[id] = conns[best]
			}
		}
	}
	return out
}

// stampSlack is how far two taps' stamps of one byte may disagree.
const stampSlack = 2 * time.Millisecond

// tighter says whether connection b fits its request more tightly than
// a: before the chain, the answer reaching it sooner, then having begun
// later; after the chain, the answer leaving it later, then having begun
// sooner.
func tighter(a, b *flow, before bool) bool {
	if a.first[1] != b.first[1] {
		if a.first[1].IsZero() || b.first[1].IsZero() {
			return a.first[1].IsZero()
		}
		if before {
			return b.first[1].Before(a.first[1])
		}
		return b.first[1].After(a.first[1])
	}
	if before {
		return b.first[0].After(a.first[0])
	}
	return b.first[0].Before(a.first[0])
}

// chainBefore says whether flow a's leg comes before b's in the chain (by
// their IDs, or, without them, by when each carried its first byte towards
// the pod).
func chainBefore(a, b *flow) bool {
	oa, ob := a.legID.Order(), b.legID.Order()
	if oa >= 0 && ob >= 0 && oa != ob {
		return oa < ob
	}
	return a.first[0].Before(b.first[0])
}

// sameBytes reports whether a request's data stream and a TCP connection
// carried the same bytes towards the pod: all of them (digest and count)
// when the Correlator keeps digests, else their first ChunkPrefix bytes.
func sameBytes(digests bool, req, conn *flow) bool {
	if digests {
		return req.bytes[0] == conn.bytes[0] && req.crc[0] == conn.crc[0]
	}
	p := req.prefix[0]
	n := min(len(p), len(conn.prefix[0]))
	return n > 0 && bytes.Equal(p[:n], conn.prefix[0][:n])
}

// direction orders the legs by when the direction's first byte crossed
// them and computes the hops.
func direction(fs []*flow, d int) DirHops {
	var legs []LegTimes
	for _, f := range fs {
		if f.bytes[d] > 0 {
			lt := LegTimes{Leg: f.leg, LegID: f.legID, At: f.legAt, Conn: f.conn, First: f.first[d], Last: f.last[d], Bytes: f.bytes[d], FirstChunk: f.firstLen[d]}
			if dg, ok := f.digest(d); ok {
				lt.Digest = fmt.Sprintf("%08x", dg)
			}
			legs = append(legs, lt)
		}
	}
	return orderLegs(legs, d == 0)
}

// orderLegs puts a direction's legs in the order its bytes crossed them
// and computes the hops between them. When every leg is placed in the
// chain (its ID), that is the chain's order (towards the pod, or back up
// it), and the time orders the taps of one hop: a tap stamped a little
// late (an in-process tap that waited behind another connection's frame, a
// clock estimate off by its uncertainty) then shows as a hop of negative
// latency, never as bytes that crossed the chain backwards. Otherwise (a
// capture pftap did not make) it is the order of their first bytes.
func orderLegs(legs []LegTimes, toPod bool) DirHops {
	placed := true
	for _, l := range legs {
		if l.LegID.Hop() < 0 {
			placed = false
		}
	}
	sort.SliceStable(legs, func(i, j int) bool {
		if placed {
			hi, hj := legs[i].LegID.Hop(), legs[j].LegID.Hop()
			if hi != hj {
				return hi < hj == toPod
			}
		}
		return legs[i].First.Before(legs[j].First)
	})
	dh := DirHops{Legs: legs, FirstByte: []time.Duration{}, LastByte: []time.Duration{}}
	if dh.Legs == nil {
		dh.Legs = []LegTimes{}
	}
	for _, l := range legs {
		dh.Bytes = max(dh.Bytes, l.Bytes)
	}
	for i := 0; i+1 < len(legs); i++ {
		dh.FirstByte = append(dh.FirstByte, legs[i+1].First.Sub(legs[i].First))
		dh.LastByte = append(dh.LastByte, legs[i+1].Last.Sub(legs[i].Last))
	}
	if len(legs) > 1 {
		dh.Total = legs[len(legs)-1].First.Sub(legs[0].First)
		dh.TotalLast = legs[len(legs)-1].Last.Sub(legs[0].Last)
	}
	return dh
}

// requestLine is the method and target of the HTTP/1.x request line b
// begins with, or "".
func requestLine(b []byte) string {
	line, _, ok := bytes.Cut(b, []byte("\r\n"))
	if !ok {
		return ""
	}
	parts := strings.Split(string(line), " ")
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/1.") || parts[0] == "" || strings.ToUpper(parts[0]) != parts[0] {
		return ""
	}
	return parts[0] + " " + parts[1]
}

func numLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// HopsText renders one line per direction of each request:
//
//	request 0  → pod 79 B: user→kubectl ─1.01ms→ L1 client→apiserver ─133µs→ ... (2.03ms end to end)
//
// With maskTimes the latencies print as "T" (stable output for tests).
func HopsText(hs []Hops, maskTimes bool) string {
	lat := fmtLatency
	if maskTimes {
		lat = func(time.Duration) string { return "T" }
	}
	var b strings.Builder
	if len(hs) == 0 {
		return ""
	}
	b.WriteString("\nper-hop latency of the first byte (each request, each direction, legs in the order the bytes crossed them):\n")
	for _, h := range hs {
		label := "request " + h.RequestID
		for i, d := range []struct {
			arrow string
			dh    DirHops
		}{{"→ pod", h.ToPod}, {"← pod", h.FromPod}} {
			if len(d.dh.Legs) == 0 {
				continue
			}
			if i == 1 {
				label = strings.Repeat(" ", len(label))
			}
			fmt.Fprintf(&b, "  %s  %s %s: %s", label, d.arrow, fmtSize(d.dh.Bytes), d.dh.Legs[0].Leg)
			for k := 1; k < len(d.dh.Legs); k++ {
				fmt.Fprintf(&b, " ─%s→ %s", lat(d.dh.FirstByte[k-1]), d.dh.Legs[k].Leg)
			}
			if len(d.dh.Legs) > 1 {
				if sameCount(d.dh.Legs) {
					fmt.Fprintf(&b, "  (%s end to end; last byte %s)", lat(d.dh.Total), lat(d.dh.TotalLast))
				} else {
					// A transfer cut short: each leg's last byte is a
					// different byte.
					fmt.Fprintf(&b, "  (%s end to end; the legs carried different byte counts, so no last byte)", lat(d.dh.Total))
				}
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// sameCount says whether every leg with bytes of its own (not a TLS leg)
// carried as many bytes as the others.
func sameCount(legs []LegTimes) bool {
	var n int64 = -1
	for _, l := range legs {
		if l.TLS {
			continue
		}
		if n >= 0 && l.Bytes != n {
			return false
		}
		n = l.Bytes
	}
	return true
}

func fmtSize(n int64) string {
	if n < 10<<10 {
		return fmt.Sprintf("%d B", n)
	}
	if n < 10<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func fmtLatency(d time.Duration) string {
	switch {
	case d < time.Millisecond && d > -time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.3fs", d.Seconds())
}
