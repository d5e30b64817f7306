package session

import (
	"sync"
	"time"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/decode/packet"
	"github.com/pftap/pftap/leg"
	"github.com/pftap/pftap/timeline"
)

// Live decodes each leg of a live session where its frames arrive: a
// capture's frames on the goroutine that drains its ring, an in-process
// tap's in the read or write that made them, an agent's on the goroutine
// that reads its stream. Each leg has a decoder and a correlator of its own
// (decode.LegSet), so a frame is decoded once, while its bytes are still
// in the cache, and never copied or kept; the per-flow digests are taken
// there too. Run hands the events over in time order, a little behind the
// taps (see NewLive).
type Live struct {
	set      *decode.LegSet
	lateness time.Duration
	emit     func(*decode.Event) // set by Run
	mu       sync.Mutex          // guards legs while legs are added
	legs     []*liveLeg
	ended    chan struct{}
	once     sync.Once
}

// liveLeg is one leg's decoding state.
type liveLeg struct {
	// mu serialises the leg's frames: several in-process taps (one per
	// connection) can share a leg.
	mu      sync.Mutex
	dec     *decode.LegDecoder
	corr    *timeline.Correlator
	records []decode.TLSRecord
	p       packet.Packet
	last    time.Time // the latest in-process stamp
	stopped bool      // the session ended: frames are dropped
	remote  bool      // decoded elsewhere: its events come decoded
}

// DefaultLateness is how far behind the taps Run takes events in a lab,
// so that the events of frames stamped earlier on one leg but handed over
// later (a capture ring hands packets over a block at a time, after at
// most its 10 ms block timeout and the drain's scheduling) come first.
// In-process taps are stamped under their leg's lock, when decoded, so
// their frames are never late.
const DefaultLateness = 50 * time.Millisecond

// Decoded is what decoding a session leaves beside its events.
type Decoded struct {
	Summary decode.Summary
	// Correlator holds every leg's requests, in the session's connection
	// numbers.
	Correlator *timeline.Correlator
	// Records are the TLS records of the legs seen only as TLS.
	Records []decode.TLSRecord
}

// NewLive returns a Live with no legs whose Run releases events lateness
// behind the taps (0: DefaultLateness); frames handed over later than
// that still come out, after the events already released.
func NewLive(verbosity int, lateness time.Duration) *Live {
	if lateness <= 0 {
		lateness = DefaultLateness
	}
	ld := &Live{ended: make(chan struct{}), lateness: lateness}
	ld.set = decode.NewLegSet(decode.Options{Verbosity: verbosity}, func(e *decode.Event) { ld.emit(e) })
	return ld
}

// AddLeg adds the next leg and returns its index.
func (ld *Live) AddLeg(lg leg.Leg) int {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	l := &liveLeg{corr: timeline.NewCorrelator()}
	l.corr.Digests = true
	l.dec = ld.set.AddLeg(lg, l.corr.Chunk, func(r *decode.TLSRecord) { l.records = append(l.records, *r) })
	ld.legs = append(ld.legs, l)
	return len(ld.legs) - 1
}

// AddLegHooks adds the next leg as AddLeg does, its decoder also
// reporting through hooks (decode.LegHooks: Chunks and Records are the
// Live's own and are ignored), and returns its index.
func (ld *Live) AddLegHooks(lg leg.Leg, h decode.LegHooks) int {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	l := &liveLeg{corr: timeline.NewCorrelator()}
	l.corr.Digests = true
	h.Chunks = l.corr.Chunk
	h.Records = func(r *decode.TLSRecord) { l.records = append(l.records, *r) }
	l.dec = ld.set.AddLegHooks(lg, h)
	ld.legs = append(ld.legs, l)
	return len(ld.legs) - 1
}

// AddRemoteLeg adds the next leg, decoded elsewhere (by pftap agent, on
// the node): its events, TLS records and totals come through Remote*.
func (ld *Live) AddRemoteLeg(lg leg.Leg) int {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	l := &liveLeg{corr: timeline.NewCorrelator(), remote: true}
	l.corr.Digests = true
	l.dec = ld.set.AddRemoteLeg(lg)
	ld.legs = append(ld.legs, l)
	return len(ld.legs) - 1
}

// RemoteEvent takes an event of remote leg i, completed by a packet of
// time t, its Conn the leg's own number for the connection.
func (ld *Live) RemoteEvent(i int, t time.Time, e *decode.Event) {
	l := ld.leg(i)
	if l == nil || !l.remote {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.dec.Push(t, e)
	}
}

// RemoteRecords takes TLS records of remote leg i (their Conn the leg's
// own numbers).
func (ld *Live) RemoteRecords(i int, rs []decode.TLSRecord) {
	l := ld.leg(i)
	if l == nil || !l.remote {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range rs {
		r.Leg, r.LegID = l.dec.Name(), l.dec.LegID()
		l.records = append(l.records, r)
	}
}

// RemoteState sets what remote leg i still waits for, and, at its end,
// its totals (sum) and its correlator's flows.
func (ld *Live) RemoteState(i int, conns, requests int, sum *decode.Summary, flows []timeline.Flow) {
	l := ld.leg(i)
	if l == nil || !l.remote {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dec.SetRemote(sum, conns, requests)
	if flows != nil {
		l.corr.AddFlows(flows)
	}
}

// leg is leg i, or nil for a leg there is not (an agent's stream names
// its interfaces).
func (ld *Live) leg(i int) *liveLeg {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	if i < 0 || i >= len(ld.legs) {
		return nil
	}
	return ld.legs[i]
}

// Frame decodes a captured frame (Ethernet) of leg i; data is only read
// during the call.
func (ld *Live) Frame(i int, ts time.Time, data []byte) {
	l := ld.leg(i)
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped || l.remote || packet.Decode(packet.LinkEthernet, data, &l.p) != nil {
		return
	}
	l.p.Time, l.p.Interface = ts, l.dec.Index()
	l.dec.Add(&l.p)
}

// Parts decodes a frame of an in-process tap given as its headers
// (Ethernet, IPv4, TCP) and its payload, stamped now (when the tap hands
// it over; no earlier than the leg's last frame, so that a leg's frames
// are in time order whichever taps make them, and never later than Run
// expects). keep, when set, gets the stamp under the leg's lock (to record
// the frame in that order).
func (ld *Live) Parts(i int, head, payload []byte, keep func(ts time.Time)) {
	l := ld.leg(i)
	if l == nil {
		return
	}
	// Stamped when the tap hands the frame over, before waiting for the
	// leg (another connection's frame may be decoding): the wall clock
	// only, as the kernel stamps captured frames and as a recording keeps
	// them (a monotonic reading would make differences between in-process
	// frames disagree with those of the file).
	ts := time.Now().Round(0)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped || l.remote {
		return
	}
	// A leg's frames stay in time order whichever taps make them: a frame
	// that waited for the leg behind a later one takes that one's time.
	if ts.Before(l.last) {
		ts = l.last
	}
	l.last = ts
	if keep != nil {
		keep(ts)
	}
	if packet.Decode(packet.LinkEthernet, head, &l.p) != nil {
		return
	}
	// The headers announce the payload that follows them.
	l.p.Payload, l.p.Missing = payload, 0
	l.p.Time, l.p.Interface = ts, l.dec.Index()
	l.dec.Add(&l.p)
}

// Pending sums, over every leg, the connections not yet closed both ways
// and the port-forward requests not yet ended, as decoded so far.
func (ld *Live) Pending() (conns, requests int) {
	ld.mu.Lock()
	legs := ld.legs
	ld.mu.Unlock()
	for _, l := range legs {
		l.mu.Lock()
		c, r := l.dec.Pending()
		l.mu.Unlock()

		conns, requests = conns+c, requests+r
	}
	return conns, requests
}

// Finish ends the input: frames that still come are dropped, and Run
// releases what is left and returns.
func (ld *Live) Finish() {
	ld.once.Do(func() {
		ld.mu.Lock()
		legs := ld.legs
		ld.mu.Unlock()
		for _, l := range legs {
			l.mu.Lock()
			l.stopped = true
			l.mu.Unlock()
		}
		close(ld.ended)
	})
}

// Run hands every event to emit, in time order, the lateness behind the
// taps, until Finish; then it finishes the decoding and returns the
// totals, the legs' correlators merged, and every TLS record. It is
// called once.
func (ld *Live) Run(emit func(*decode.Event)) Decoded {
	ld.emit = emit
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-ld.ended:
			running = false
		case <-tick.C:
			ld.set.Release(time.Now().Add(-ld.lateness))
		}
	}
	res := Decoded{Summary: ld.set.Finish(), Correlator: timeline.NewCorrelator()}
	ld.mu.Lock()
	legs := ld.legs
	ld.mu.Unlock()
	for i, l := range legs {
		res.Correlator.Merge(l.corr, func(_ string, local int) int { return ld.set.Conn(i, local) })
		for _, r := range l.records {
			r.Conn = ld.set.Conn(i, r.Conn)
			res.Records = append(res.Records, r)
		}
	}
	return res
}
