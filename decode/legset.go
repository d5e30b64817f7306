package decode

import (
	"fmt"
	"sync"
	"time"

	"github.com/pftap/pftap/leg"

	"github.com/pftap/pftap/decode/packet"
)

// A LegSet decodes several legs at once, each with a decoder of its own,
// so that each leg can be decoded where its packets arrive (the goroutine
// that drains its capture, the connection an in-process tap wraps) while
// the bytes are still in the cache, and nothing is copied to be decoded
// later. Its events come out as one stream, in the order and with the
// connection numbers that one Decoder fed every leg's packets merged by
// time would give (see Release): a packet that is earlier than another
// goes first, and between packets of the same time the leg added first.
//
// A LegSet has no clock: the caller says up to when events may be released
// (a live session releases events once no leg can still deliver an earlier
// packet).
//
// Each leg's Add must be called by one goroutine at a time; different legs
// may be fed concurrently, and Release may run beside them. Finish is
// called once every Add has returned.
type LegSet struct {
	opts     Options
	emit     func(*Event)
	mu       sync.Mutex // guards legs while legs are added
	legs     []*LegDecoder
	ids      map[connRef]int // global connection numbers
	refs     []connRef       // by global number - 1
	firstErr string
	finish   bool
}

type connRef struct{ leg, local int }

// A LegDecoder is one leg of a LegSet: decoded here (Add), or decoded
// elsewhere and handed over as events (a remote leg: Push).
type LegDecoder struct {
	set     *LegSet
	idx     int
	d       *Decoder // nil for a remote leg
	lg      leg.Leg
	observe func(*Event)
	cur     time.Time // the time of the packet being decoded
	mu      sync.Mutex
	q       []legItem // events not yet released, in the order emitted (a remote leg's in time order)
	head    int
	// A remote leg's totals and what it still waits for, as its
	// decoder reported them.
	rsum     Summary
	rpending [2]int
}

// LegHooks are what a leg of a LegSet reports beside its events, on the
// goroutine that calls its Add. The Conn each carries is the leg's own
// number for the connection, which LegSet.Conn turns into the set's.
type LegHooks struct {
	// Chunks, Records and SPDYBytes are the leg's Options.Chunks,
	// Options.Records and Options.SPDYBytes.
	Chunks    func(*Chunk)
	Records   func(*TLSRecord)
	SPDYBytes func(*SPDYBytes)
	// Observe sees each of the leg's events as it is decoded, before it
	// waits for Release (its Conn still the leg's own number). It must
	// not keep the Event.
	Observe func(*Event)
}

type legItem struct {
	t time.Time // the time of the packet that completed the event
	e *Event
}

// NewLegSet returns an empty LegSet whose events go to emit, in merged
// order, as Release and Finish release them. opts apply to every leg;
// Options.Frames is not supported (replaying needs one Decoder).
func NewLegSet(opts Options, emit func(*Event)) *LegSet {
	opts.Frames = nil
	return &LegSet{opts: opts, emit: emit, ids: map[connRef]int{}}
}

// AddLeg adds a leg, the next in order (ties in time go to the leg added
// first); its events carry its name and ID. chunks and records, when not nil, receive that leg's
// Options.Chunks and Options.Records calls, on the goroutine that calls
// its Add; the Conn they carry is the leg's own number for the connection,
// which Conn turns into the set's.
func (s *LegSet) AddLeg(lg leg.Leg, chunks func(*Chunk), records func(*TLSRecord)) *LegDecoder {
	return s.AddLegHooks(lg, LegHooks{Chunks: chunks, Records: records})
}

// AddLegHooks adds a leg, as AddLeg does, with every hook a leg has.
func (s *LegSet) AddLegHooks(lg leg.Leg, h LegHooks) *LegDecoder {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &LegDecoder{set: s, idx: len(s.legs), lg: lg, observe: h.Observe}
	o := s.opts
	o.Chunks, o.Records, o.SPDYBytes = h.Chunks, h.Records, h.SPDYBytes
	l.d = NewDecoder(o, l.event)
	l.d.SetInterfaces([]packet.Interface{{Index: l.idx, Name: lg.Name, Leg: lg.ID, At: lg.At}})
	s.legs = append(s.legs, l)
	return l
}

// AddRemoteLeg adds a leg decoded elsewhere (by pftap agent, on the node
// that sees it): its events come decoded, through Push, and its totals
// through SetRemote. It takes its place in the merged order as any leg.
func (s *LegSet) AddRemoteLeg(lg leg.Leg) *LegDecoder {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &LegDecoder{set: s, idx: len(s.legs), lg: lg}
	s.legs = append(s.legs, l)
	return l
}

// Name is the leg's name.
func (l *LegDecoder) Name() string { return l.lg.Name }

// LegID is the leg's place in the chain.
func (l *LegDecoder) LegID() leg.ID { return l.lg.ID }

// Remote says whether the leg is decoded elsewhere.
func (l *LegDecoder) Remote() bool { return l.d == nil }

// Push takes one event of a remote leg, decoded where the leg was
// captured: t is the time of the packet that completed it, and its Conn
// the connection's number on that leg (as a Decoder of that leg alone
// numbers them). Events may come out of time order (a connection whose
// packets were held back); each takes its place by t. The Event is kept.
func (l *LegDecoder) Push(t time.Time, e *Event) {
	e.Leg, e.LegID = l.lg.Name, l.lg.ID
	if l.set.finish {
		l.set.out(l.idx, e)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	i := len(l.q)
	for i > l.head && t.Before(l.q[i-1].t) {
		i--
	}
	l.q = append(l.q, legItem{})
	copy(l.q[i+1:], l.q[i:])
	l.q[i] = legItem{t, e}
}

// SetRemote sets a remote leg's totals (its Decoder's Finish, the legs
// named in it this leg's) and what it still waits for, as last reported.
func (l *LegDecoder) SetRemote(sum *Summary, conns, requests int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sum != nil {
		l.rsum = *sum
	}
	l.rpending = [2]int{conns, requests}
}

// Pending is Decoder.Pending for this leg (a remote leg's as last
// reported); it must not run beside the leg's Add.
func (l *LegDecoder) Pending() (conns, requests int) {
	if l.d == nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.rpending[0], l.rpending[1]
	}
	return l.d.Pending()
}

// summary is the leg's totals so far.
func (l *LegDecoder) summary() Summary {
	if l.d == nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.rsum
	}
	return l.d.sum
}

// Index is the leg's place in the set: packets given to Add carry it as
// their Interface.
func (l *LegDecoder) Index() int { return l.idx }

// Add decodes one packet of the leg, whose Interface must be the leg's
// Index. The events it completes wait for Release. Packets of a leg must
// come in capture order. The packet's bytes are not kept.
func (l *LegDecoder) Add(p *packet.Packet) {
	l.cur = p.Time
	l.d.Add(p)
}

func (l *LegDecoder) event(e *Event) {
	if l.observe != nil {
		l.observe(e)
	}
	if l.set.finish {
		l.set.out(l.idx, e)
		return
	}
	l.mu.Lock()
	l.q = append(l.q, legItem{l.cur, e})
	l.mu.Unlock()
}

// peek returns the time of the leg's oldest unreleased event.
func (l *LegDecoder) peek() (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.head == len(l.q) {
		return time.Time{}, false
	}
	return l.q[l.head].t, true
}

func (l *LegDecoder) pop() *Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.q[l.head].e
	l.q[l.head] = legItem{}
	l.head++
	if l.head == len(l.q) {
		l.q, l.head = l.q[:0], 0
	} else if l.head > 1024 && l.head > len(l.q)/2 {
		n := copy(l.q, l.q[l.head:])
		clear(l.q[n:])
		l.q, l.head = l.q[:n], 0
	}
	return e
}

// out numbers the event's connection across the set and emits it.
func (s *LegSet) out(leg int, e *Event) {
	ref := connRef{leg, e.Conn}
	id, ok := s.ids[ref]
	if !ok {
		// A connection's first event is the one its first packet makes
		// (KindConn), so numbers follow the merged order of first packets,
		// as one Decoder's do.
		s.refs = append(s.refs, ref)
		id = len(s.refs)
		s.ids[ref] = id
	}
	e.Conn = id
	if e.Kind == KindDecodeError && s.firstErr == "" {
		s.firstErr = fmt.Sprintf("conn %d %s: %s", id, e.Dir, e.Text)
	}
	s.emit(e)
}

// Release emits, in merged order, every event completed by a packet
// earlier than before, and returns the time of the oldest event it keeps
// (ok false when none is left). The caller must know that no leg will
// still Add a packet earlier than before.
func (s *LegSet) Release(before time.Time) (next time.Time, ok bool) {
	return s.release(before, false)
}

func (s *LegSet) release(before time.Time, all bool) (time.Time, bool) {
	s.mu.Lock()
	legs := s.legs
	s.mu.Unlock()
	for {
		best := -1
		var bt time.Time
		for i, l := range legs {
			if t, ok := l.peek(); ok && (best < 0 || t.Before(bt)) {
				best, bt = i, t
			}
		}
		if best < 0 {
			return time.Time{}, false
		}
		if !all && !bt.Before(before) {
			return bt, true
		}
		s.out(best, legs[best].pop())
	}
}

// Conn returns the set's number for connection local of leg (as carried
// by that leg's Chunks and Records), or 0 for a connection that made no
// event yet.
func (s *LegSet) Conn(leg, local int) int { return s.ids[connRef{leg, local}] }

// Finish ends the input of every leg, once every Add has returned: it
// releases every event, then, as Decoder.Finish does, turns open holes
// into gaps, closes what is open and summarises unfinished requests (at
// the time of the last packet of any leg), connection by connection in the
// set's numbering, and returns the totals of all legs.
func (s *LegSet) Finish() Summary {
	s.release(time.Time{}, true)
	s.mu.Lock()
	legs := s.legs
	s.mu.Unlock()
	var sum Summary
	sums := make([]Summary, len(legs))
	for i, l := range legs {
		sums[i] = l.summary()
		ls := sums[i]
		if ls.Packets == 0 {
			continue
		}
		if sum.Packets == 0 || ls.Start.Before(sum.Start) {
			sum.Start = ls.Start
		}
		if ls.End.After(sum.End) {
			sum.End = ls.End
		}
		sum.Packets += ls.Packets
	}
	s.finish = true
	// Every connection made its KindConn event at its first packet, so
	// every one has a number by now.
	// A remote leg was finished where it was decoded.
	for _, ref := range s.refs {
		if l := legs[ref.leg]; l.d != nil {
			l.d.asm.FlushConn(l.d.conns[ref.local-1].c, sum.End)
		}
	}
	for _, ref := range s.refs {
		if l := legs[ref.leg]; l.d != nil {
			l.d.conns[ref.local-1].finishRequests(sum.End, "capture ended")
		}
	}
	for i, l := range legs {
		ls := sums[i]
		if l.d != nil {
			ls = l.d.sum
		}
		sum.Connections += ls.Connections
		sum.Upgrades += ls.Upgrades
		sum.FailedUpgrade += ls.FailedUpgrade
		sum.Requests += ls.Requests
		sum.RequestErrors += ls.RequestErrors
		sum.BytesToPod += ls.BytesToPod
		sum.BytesFromPod += ls.BytesFromPod
		sum.SPDYFrames += ls.SPDYFrames
		sum.Gaps += ls.Gaps
		sum.GapBytes += ls.GapBytes
		sum.Warnings += ls.Warnings
		sum.DecodeErrors += ls.DecodeErrors
		for name, v := range ls.Legs {
			if sum.Legs == nil {
				sum.Legs = map[string]*LegSummary{}
			}
			if have := sum.Legs[name]; have != nil {
				have.add(v)
			} else {
				c := *v
				sum.Legs[name] = &c
			}
		}
	}
	sum.FirstError = s.firstErr
	sum.settle()
	return sum
}
