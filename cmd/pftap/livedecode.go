package main

import (
	"github.com/pftap/pftap/leg"
	"sync"
	"time"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/decode/packet"
	"github.com/pftap/pftap/timeline"
)

// liveDecoder decodes each leg of a live session where its frames arrive:
// a capture's frames on the goroutine that drains its ring, an in-process
// tap's in the read or write that made them. Each leg has a decoder and a
// correlator of its own (decode.LegSet), so a frame is decoded once, while
// its bytes are still in the cache, and never copied or kept; the
// per-flow digests are taken there too. The renderer takes the events in
// time order, liveLateness behind the taps.
type liveDecoder struct {
	set   *decode.LegSet
	emit  func(*decode.Event) // set by run
	mu    sync.Mutex          // guards legs while legs are added
	legs  []*liveLeg
	ended chan struct{}
	once  sync.Once
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
	stopped bool // the session ended: frames are dropped
}

// liveLateness is how far behind the taps the renderer takes events, so
// that the events of frames stamped earlier on one leg but handed over
// later (a capture ring hands packets over a block at a time, after at
// most its 10 ms block timeout and the drain's scheduling) come first.
// In-process taps are stamped under their leg's lock, when decoded, so
// their frames are never late.
const liveLateness = 50 * time.Millisecond

func newLiveDecoder(verbosity int) *liveDecoder {
	ld := &liveDecoder{ended: make(chan struct{})}
	ld.set = decode.NewLegSet(decode.Options{Verbosity: verbosity}, func(e *decode.Event) { ld.emit(e) })
	return ld
}

// addLeg adds the next leg; its index is the recorder's for it.
func (ld *liveDecoder) addLeg(lg leg.Leg) int {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	l := &liveLeg{corr: timeline.NewCorrelator()}
	l.corr.Digests = true
	l.dec = ld.set.AddLeg(lg, l.corr.Chunk, func(r *decode.TLSRecord) { l.records = append(l.records, *r) })
	ld.legs = append(ld.legs, l)
	return len(ld.legs) - 1
}

func (ld *liveDecoder) leg(i int) *liveLeg {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.legs[i]
}

// frame decodes a captured frame (Ethernet) of leg i; data is only read
// during the call.
func (ld *liveDecoder) frame(i int, ts time.Time, data []byte) {
	l := ld.leg(i)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped || packet.Decode(packet.LinkEthernet, data, &l.p) != nil {
		return
	}
	l.p.Time, l.p.Interface = ts, l.dec.Index()
	l.dec.Add(&l.p)
}

// parts decodes a frame of an in-process tap given as its headers
// (Ethernet, IPv4, TCP) and its payload, stamped now: under the leg's
// lock, so that a leg's frames are in time order whichever taps make them,
// and never later than the renderer expects. keep, when set, gets the
// stamp under the same lock (to spool the frame in that order).
func (ld *liveDecoder) parts(i int, head, payload []byte, keep func(ts time.Time)) {
	l := ld.leg(i)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	// The wall clock only, as the kernel stamps captured frames and as a
	// recording keeps them: a monotonic reading would make differences
	// between in-process frames disagree with those of the file.
	ts := time.Now().Round(0)
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

// pending sums, over every leg, the connections not yet closed both ways
// and the port-forward requests not yet ended, as decoded so far.
func (ld *liveDecoder) pending() (conns, requests int) {
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

// finish ends the input: frames that still come are dropped, and run
// releases what is left and returns.
func (ld *liveDecoder) finish() {
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

// run hands every event to emit, in time order, liveLateness behind the
// taps, until finish; then it finishes the decoding and returns the
// totals, the legs' correlators merged, and every TLS record.
func (ld *liveDecoder) run(emit func(*decode.Event)) decodedSession {
	ld.emit = emit
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-ld.ended:
			running = false
		case <-tick.C:
			ld.set.Release(time.Now().Add(-liveLateness))
		}
	}
	res := decodedSession{sum: ld.set.Finish(), corr: timeline.NewCorrelator()}
	ld.mu.Lock()
	legs := ld.legs
	ld.mu.Unlock()
	for i, l := range legs {
		res.corr.Merge(l.corr, func(_ string, local int) int { return ld.set.Conn(i, local) })
		for _, r := range l.records {
			r.Conn = ld.set.Conn(i, r.Conn)
			res.records = append(res.records, r)
		}
	}
	return res
}
