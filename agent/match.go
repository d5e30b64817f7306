package agent

import (
	"bytes"
	"hash/crc32"
	"sync"
	"time"
)

// Whose connection is it? A node's legs carry every port-forward to the
// node's pods, every exec and log stream, the metrics scrapes: a trace
// gets only its own session. The agent holds back the packets of each new
// connection on a leg until it knows whether the connection is part of
// trace's port-forward, and then either decodes them (and every later
// packet of it) as trace's, or leaves the connection out, counted.
//
// What the agent goes by, trace tells it as its own port-forward happens:
//
//   - each upgrade request trace sends and when its answer came back
//     (Upgrade, on the agent's clock by the estimate the hello made). The
//     apiserver dials the kubelet for a port-forward upgrade after the
//     request left trace and before the answer came back, and the kubelet
//     dials the runtime in between too: a connection of L2 or L3 that
//     began outside every window of trace's is not trace's.
//   - the first SPDYPrefix bytes of each direction of each of trace's
//     SPDY sessions, and digests beyond (MsgSPDY, MsgGrid). One SPDY
//     session runs from trace to the runtime's streaming server, byte for
//     byte: an L3 connection is trace's when what it carried so far is
//     what trace's session carried, both ways, and no other L3 connection
//     of the window can say the same.
//
// The pod's lo (L4) is matched to the data streams of the L3 session thus
// found: the runtime dials the app for each data stream, after the stream
// opened, and the connection carries the stream's bytes. The witness
// (eth0) is matched in the same way, and nothing of the session is ever
// found there. The apiserver's TLS connection to the kubelet (L2 on the
// wire) can only be told by time: the one connection that began inside
// an upgrade window of trace's.
//
// A connection that could be trace's as well as another one (two sessions
// that began in the same milliseconds and carried the same bytes so far)
// stays held until one differs; at the end, what is still ambiguous is left
// out and counted as such.

// slack widens trace's windows: the apiserver's and the kubelet's own
// scheduling around the request and the answer.
const slack = 5 * time.Millisecond

// decideWithin bounds the wait for the facts that decide a connection: a
// connection still undecided that long after its first packet (and after
// every window it could belong to has closed) is left out.
const decideWithin = 3 * time.Second

// l4After bounds how long after its data stream opened the runtime's
// connection to the app may begin.
const l4After = 2 * time.Second

// prefixKeep is how many bytes of each direction of a data stream, and of
// an L4 connection, are compared.
const prefixKeep = 256

// traceSPDY is what trace told of one of its SPDY sessions.
type traceSPDY struct {
	buf  [2][]byte // the first SPDYPrefix bytes of each direction
	grid [2]map[int64]uint32
	// bound is the L3 connection found to carry it.
	bound *cand
}

// dataStream is a data stream of trace's session, as L3's decoding saw it.
type dataStream struct {
	conn   int // on L3's decoder
	req    string
	open   time.Time
	prefix [2][]byte
	// taken by an L4 connection; seen by a witness connection.
	taken bool
}

type streamKey struct {
	conn int
	req  string
}

// matcher holds what trace told the agent, and what the agent found of
// trace's session, shared by every leg.
type matcher struct {
	mu       sync.Mutex
	nodeWide bool
	ups      map[int]*Upgrade
	spdy     map[int]*traceSPDY
	streams  []*dataStream
	byStream map[streamKey]*dataStream
	// l2, l3: the connection found for each upgrade (by its ID).
	l2, l3 map[int]*cand
}

func newMatcher(nodeWide bool) *matcher {
	return &matcher{nodeWide: nodeWide, ups: map[int]*Upgrade{}, spdy: map[int]*traceSPDY{}, byStream: map[streamKey]*dataStream{},
		l2: map[int]*cand{}, l3: map[int]*cand{}}
}

// upgrade takes one of trace's reports of an upgrade; later reports
// complete earlier ones.
func (m *matcher) upgrade(u Upgrade) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.ups[u.ID]
	if cur == nil {
		cur = &Upgrade{ID: u.ID}
		m.ups[u.ID] = cur
	}
	if !u.Sent.IsZero() {
		cur.Sent = u.Sent
	}
	if !u.Answered.IsZero() {
		cur.Answered, cur.Status = u.Answered, u.Status
	}
	if !u.Closed.IsZero() {
		cur.Closed = u.Closed
	}
	cur.Uncertainty = max(cur.Uncertainty, u.Uncertainty)
}

// spdyBytes takes bytes of one of trace's SPDY sessions.
func (m *matcher) spdyBytes(id, dir int, off int64, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.session(id)
	if off != int64(len(t.buf[dir])) {
		return // not the next bytes: trace sends them in order
	}
	room := SPDYPrefix - len(t.buf[dir])
	t.buf[dir] = append(t.buf[dir], data[:min(room, len(data))]...)
}

func (m *matcher) gridMark(id, dir int, k int64, crc uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.session(id)
	if t.grid[dir] == nil {
		t.grid[dir] = map[int64]uint32{}
	}
	t.grid[dir][k] = crc
}

func (m *matcher) session(id int) *traceSPDY {
	t := m.spdy[id]
	if t == nil {
		t = &traceSPDY{}
		m.spdy[id] = t
	}
	return t
}

// window says whether t lies inside the window of upgrade u, and whether
// the window is still open (unanswered, not closed).
func (u *Upgrade) window(t time.Time) (in, open bool) {
	if u.Sent.IsZero() {
		return false, true
	}
	w := u.Uncertainty + slack
	if t.Before(u.Sent.Add(-w)) {
		return false, false
	}
	end := u.Answered
	if end.IsZero() {
		end = u.Closed
	}
	if end.IsZero() {
		return true, true
	}
	return !t.After(end.Add(w)), false
}

// windows returns the upgrades whose window holds t, and whether some
// window may still come to hold it (one still open before t, or trace may
// not have told of it yet: t is recent).
func (m *matcher) windows(t, now time.Time) (in []*Upgrade, maybe bool) {
	for _, u := range m.ups {
		i, open := u.window(t)
		if i {
			in = append(in, u)
		} else if open && !u.Sent.IsZero() && !t.Before(u.Sent) {
			maybe = true
		}
	}
	if now.Sub(t) < time.Second {
		maybe = true // trace's report of the upgrade may still be on its way
	}
	return in, maybe
}

// candSPDY is what an L3 connection carried as SPDY, each direction.
type candSPDY struct {
	buf  []byte // the first SPDYPrefix bytes
	pos  int64  // every byte
	crc  uint32 // of every byte, for the grid
	grid map[int64]uint32
}

func (s *candSPDY) add(off int64, b []byte) {
	if off != s.pos {
		return // a gap: nothing more can be compared
	}
	if room := SPDYPrefix - len(s.buf); room > 0 {
		s.buf = append(s.buf, b[:min(room, len(b))]...)
	}
	// The grid: the digest at every multiple of SPDYPrefix.
	for len(b) > 0 {
		next := (s.pos/SPDYPrefix + 1) * SPDYPrefix
		k := min(int64(len(b)), next-s.pos)
		s.crc = crc32.Update(s.crc, crc32.IEEETable, b[:k])
		s.pos += k
		b = b[k:]
		if s.pos == next {
			if s.grid == nil {
				s.grid = map[int64]uint32{}
			}
			s.grid[s.pos] = s.crc
		}
	}
}

// agrees compares an L3 connection's SPDY bytes with one of trace's
// sessions: consistent when they are equal as far as both go (and every
// digest both have agrees), covered when trace's session carried at least
// as much of each direction's first SPDYPrefix bytes as the connection.
func (t *traceSPDY) agrees(c *cand) (consistent, covered bool) {
	covered = true
	for d := 0; d < 2; d++ {
		x, y := c.spdy[d].buf, t.buf[d]
		n := min(len(x), len(y))
		if !bytes.Equal(x[:n], y[:n]) {
			return false, false
		}
		for k, crc := range c.spdy[d].grid {
			if tc, ok := t.grid[d][k]; ok && tc != crc {
				return false, false
			}
		}
		if len(y) < len(x) {
			covered = false
		}
	}
	return true, covered
}

// streamOpened notes a data stream of trace's session (L3's decoding).
func (m *matcher) streamOpened(conn int, req string, t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := streamKey{conn, req}
	if m.byStream[k] != nil {
		return
	}
	s := &dataStream{conn: conn, req: req, open: t}
	m.byStream[k] = s
	m.streams = append(m.streams, s)
}

// streamData notes bytes of a data stream of trace's session, at their
// offset in the stream's direction.
func (m *matcher) streamData(conn int, req string, dir int, off int64, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.byStream[streamKey{conn, req}]
	if s == nil || off != int64(len(s.prefix[dir])) {
		return
	}
	if room := prefixKeep - len(s.prefix[dir]); room > 0 {
		s.prefix[dir] = append(s.prefix[dir], b[:min(room, len(b))]...)
	}
}

// prefixAgree compares the first bytes of a TCP connection and a data
// stream: equal as far as both go, and how many bytes that is.
func prefixAgree(c *cand, s *dataStream) (ok bool, compared int) {
	for d := 0; d < 2; d++ {
		x, y := c.prefix[d], s.prefix[d]
		n := min(len(x), len(y))
		if !bytes.Equal(x[:n], y[:n]) {
			return false, 0
		}
		compared += n
	}
	return true, compared
}
