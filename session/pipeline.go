package session

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pftap/pftap/capture"
	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/timeline"
)

// A Pipeline takes the frames of every leg of a session, whichever tap
// made them (a packet capture, an in-process tap, an agent's stream), and
// decodes each where it arrives (Live); with a recording, it also hands
// every frame to the Recorder, which writes the file as the session goes.
// `pftap lab` and `pftap trace` both run their taps into one.
type Pipeline struct {
	mu    sync.Mutex // guards legs and stats
	legs  []capture.Leg
	stats map[int]capture.Stats
	live  *Live     // nil: the frames are only counted
	rec   *Recorder // nil: nothing recorded
	// counted are the bytes of the frames a pipeline without a decoder
	// took (to measure what the taps cost apart from decoding).
	counted atomic.Int64
	started bool // the recording was started
	closed  bool
	// moved counts each leg's bytes, for progress (the first maxLegs).
	moved [maxLegs]atomic.Int64
}

// maxLegs bounds the legs whose bytes a Pipeline counts.
const maxLegs = 16

// PipelineOptions say what a Pipeline does with the frames.
type PipelineOptions struct {
	// CountOnly counts the frames and drops them: no decoding, no
	// recording (to measure what the taps cost).
	CountOnly bool
	// Verbosity of the decoder (as pftap decode -v).
	Verbosity int
	// Lateness is how far behind the taps the events are released (0:
	// DefaultLateness).
	Lateness time.Duration
	// Write is the recording to write ("": none), created at once so
	// that a bad path fails before the session starts.
	Write string
}

// NewPipeline returns a Pipeline with no legs.
func NewPipeline(o PipelineOptions) (*Pipeline, error) {
	p := &Pipeline{stats: map[int]capture.Stats{}}
	if o.CountOnly {
		return p, nil
	}
	if o.Write != "" {
		f, err := capture.CreateFile(o.Write)
		if err != nil {
			return nil, err
		}
		p.rec = NewRecorder(f)
	}
	p.live = NewLive(o.Verbosity, o.Lateness)
	return p, nil
}

// AddLeg adds the next leg and returns its index; inproc says an
// in-process tap records it (its TCP checksums are filled in when
// recorded).
func (p *Pipeline) AddLeg(l capture.Leg, inproc bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.legs = append(p.legs, l)
	i := len(p.legs) - 1
	if p.live != nil {
		p.live.AddLeg(l.Leg)
	}
	if p.rec != nil {
		p.rec.AddLeg(inproc)
	}
	return i
}

// AddLegHooks adds the next leg as AddLeg does, its decoding also
// reporting through hooks (decode.LegHooks), and returns its index.
func (p *Pipeline) AddLegHooks(l capture.Leg, inproc bool, h decode.LegHooks) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.legs = append(p.legs, l)
	i := len(p.legs) - 1
	if p.live != nil {
		p.live.AddLegHooks(l.Leg, h)
	}
	if p.rec != nil {
		p.rec.AddLeg(inproc)
	}
	return i
}

// AddRemoteLeg adds the next leg, decoded elsewhere (by pftap agent, on
// the node that sees it), and returns its index: its events come through
// RemoteEvent, its state and totals through RemoteStatus and RemoteFinal,
// its frames (recorded only) through RemoteFrame.
func (p *Pipeline) AddRemoteLeg(l capture.Leg) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.legs = append(p.legs, l)
	i := len(p.legs) - 1
	if p.live != nil {
		p.live.AddRemoteLeg(l.Leg)
	}
	if p.rec != nil {
		p.rec.AddLeg(false)
	}
	return i
}

// RemoteEvent takes an event of a remote leg, completed by a packet of
// time t, its Conn the leg's own number for the connection.
func (p *Pipeline) RemoteEvent(leg int, t time.Time, e *decode.Event) {
	if p.live != nil {
		p.live.RemoteEvent(leg, t, e)
	}
}

// RemoteRecords takes TLS records of a remote leg.
func (p *Pipeline) RemoteRecords(leg int, rs []decode.TLSRecord) {
	if p.live != nil {
		p.live.RemoteRecords(leg, rs)
	}
}

// RemoteStatus takes a remote leg's counters so far: the bytes its
// capture took, its kernel drops, and the connections and requests its
// decoding still waits for.
func (p *Pipeline) RemoteStatus(leg int, moved int64, drops uint64, conns, requests int) {
	if leg >= 0 && leg < maxLegs {
		p.moved[leg].Store(moved)
	}
	p.SetStats(leg, capture.Stats{Drops: drops})
	if p.live != nil {
		p.live.RemoteState(leg, conns, requests, nil, nil)
	}
}

// RemoteFinal takes a remote leg's totals and its correlator's flows, once
// its decoding finished.
func (p *Pipeline) RemoteFinal(leg int, sum decode.Summary, flows []timeline.Flow) {
	if p.live != nil {
		p.live.RemoteState(leg, 0, 0, &sum, flows)
	}
}

// RemoteFrame records a frame of a remote leg (for the recording only:
// its events come decoded); note, when set, joins its comment.
func (p *Pipeline) RemoteFrame(leg int, ts time.Time, data []byte, orig int, note string) {
	if p.rec != nil {
		p.rec.AddNoted(leg, ts, data, nil, orig, note)
	}
}

// Legs are the legs added so far, in order.
func (p *Pipeline) Legs() []capture.Leg {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]capture.Leg(nil), p.legs...)
}

// Decodes says whether the frames are decoded (not only counted).
func (p *Pipeline) Decodes() bool { return p.live != nil }

// Counted are the bytes a counting pipeline took.
func (p *Pipeline) Counted() int64 { return p.counted.Load() }

// Captured takes a frame of a packet capture (Ethernet): its time, bytes
// (read only during the call) and length on the wire.
func (p *Pipeline) Captured(leg int, ts time.Time, data []byte, orig int) {
	if leg >= 0 && leg < maxLegs {
		p.moved[leg].Add(int64(orig))
	}
	if p.live == nil {
		p.counted.Add(int64(len(data)))
		return
	}
	p.live.Frame(leg, ts, data)
	if p.rec != nil {
		p.rec.Add(leg, ts, data, nil, orig)
	}
}

// Tapped takes a frame of an in-process tap, given as its headers and its
// payload. It is stamped when decoded, under its leg's lock (see
// Live.Parts), and recorded with that stamp, so that the file holds what
// was decoded.
func (p *Pipeline) Tapped(leg int, head, payload []byte) {
	if leg >= 0 && leg < maxLegs {
		p.moved[leg].Add(int64(len(head) + len(payload)))
	}
	if p.live == nil {
		p.counted.Add(int64(len(head) + len(payload)))
		return
	}
	var keep func(ts time.Time)
	if p.rec != nil {
		keep = func(ts time.Time) { p.rec.Add(leg, ts, head, payload, 0) }
	}
	p.live.Parts(leg, head, payload, keep)
}

// Moved are the bytes (frames, headers included) each leg has taken so
// far, by leg.
func (p *Pipeline) Moved() []int64 {
	p.mu.Lock()
	n := min(len(p.legs), maxLegs)
	p.mu.Unlock()
	out := make([]int64, n)
	for i := range out {
		out[i] = p.moved[i].Load()
	}
	return out
}

// SetStats keeps a capture's statistics for its leg (its drops go into
// the result and the recording).
func (p *Pipeline) SetStats(leg int, st capture.Stats) {
	p.mu.Lock()
	p.stats[leg] = st
	p.mu.Unlock()
}

// Drops are the kernel's drops per leg.
func (p *Pipeline) Drops() []uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]uint64, len(p.legs))
	for i := range out {
		out[i] = p.stats[i].Drops
	}
	return out
}

// StartRecording writes the recording's section header (comment) and its
// legs, the legs added so far; frames taken before wait for it.
func (p *Pipeline) StartRecording(comment string) error {
	if p.rec == nil {
		return nil
	}
	p.mu.Lock()
	legs := append([]capture.Leg(nil), p.legs...)
	p.started = true
	p.mu.Unlock()
	return p.rec.Start(comment, legs)
}

// Events hands every decoded event to emit, in time order, until End;
// then it returns what the decoding found. It is called once (a counting
// pipeline returns at once, with nothing decoded).
func (p *Pipeline) Events(emit func(*decode.Event)) Decoded {
	if p.live == nil {
		return Decoded{Correlator: timeline.NewCorrelator()}
	}
	return p.live.Run(emit)
}

// A drain is how a session ends without cutting its last packets off:
// wait until what the decoding has seen says the peers are done (their
// streams ended, their FINs and GOAWAYs seen on every leg), bounded.
const (
	// DrainRequests bounds the wait for every port-forward request to
	// end on every leg once the user's requests are answered.
	DrainRequests = time.Second
	// DrainConns bounds the wait for every connection to be closed both
	// ways on every leg once the client has gone.
	DrainConns = time.Second
	// ContainerdLinger is how long containerd's port forwarder waits for
	// the app's side once the client's side of a stream has ended: a lab
	// on containerd drains requests that much longer.
	ContainerdLinger = time.Second
	drainPoll        = 2 * time.Millisecond
)

// Drain waits until done, given the connections and port-forward requests
// still open on every leg as decoded so far, says the session has seen
// enough, or for at most within. A counting pipeline does not wait.
func (p *Pipeline) Drain(done func(conns, requests int) bool, within time.Duration) {
	if p.live == nil {
		return
	}
	deadline := time.Now().Add(within)
	for !done(p.live.Pending()) && time.Now().Before(deadline) {
		time.Sleep(drainPoll)
	}
}

// RequestsEnded is a Drain condition: no port-forward request is open.
func RequestsEnded(_, requests int) bool { return requests == 0 }

// ConnsClosed is a Drain condition: every connection is closed both ways.
func ConnsClosed(conns, _ int) bool { return conns == 0 }

// End ends the input: frames that still come are dropped, and Events
// returns once it has released what is left.
func (p *Pipeline) End() {
	if p.live != nil {
		p.live.Finish()
	}
}

// Recording says what a session recorded.
type Recording struct {
	Path           string
	Packets, Bytes int64
}

// CloseRecording ends the input (as End) and finishes the recording: what
// is still queued, each leg's drops, endComment in the first leg's
// statistics. A recording never started is removed. notice, when set, is
// told how many bytes are still queued when that takes a moment to write.
// It returns a zero Recording when there was none.
func (p *Pipeline) CloseRecording(endComment string, notice func(queued int64)) (Recording, error) {
	p.End()
	p.mu.Lock()
	closed := p.closed
	p.closed = true
	p.mu.Unlock()
	if p.rec == nil || closed {
		return Recording{}, nil
	}
	drops := p.Drops()
	if !p.started {
		p.rec.Abandon()
		return Recording{}, nil
	}
	n, size, err := p.rec.Finish(func(i int) uint64 {
		if i < len(drops) {
			return drops[i]
		}
		return 0
	}, endComment, func(queued int) {
		if notice != nil {
			notice(int64(queued))
		}
	})
	return Recording{Path: p.rec.Path(), Packets: n, Bytes: size}, err
}
