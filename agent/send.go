package agent

import (
	"encoding/json"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pftap/pftap/decode"
)

// A sender writes a session's messages to trace from one goroutine. What
// the decoding says (events, records, status, the finals) is never dropped
// and goes first; frames for trace -w wait in a queue of at most
// frameBudget bytes, and a frame that does not fit goes with its headers
// only (FrameShortened): the capture never waits for the link, a slow
// link costs the recording payload bytes, never packets.
type sender struct {
	mu      sync.Mutex
	cond    *sync.Cond
	ctrl    []byte // control messages, whole, in order
	frames  []byte // frame messages, whole, in order, from fhead on
	ends    []int  // where each frame message in frames ends, from ehead on
	fhead   int
	ehead   int
	closing bool
	last    []byte // the message that goes once everything else has (MsgDone)
	err     error
	w       io.Writer
	rate    int64 // bytes a second (0: as fast as the link goes)
	budget  int
	sent    atomic.Int64
	done    chan struct{}
	scratch []byte
}

// frameBudget is how many bytes of frames may wait for the link.
const frameBudget = 8 << 20

// frameChunk is how many bytes of frames are written between two looks
// at the control messages.
const frameChunk = 256 << 10

func newSender(w io.Writer, rate int64) *sender {
	s := &sender{w: w, rate: rate, budget: frameBudget, done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	go s.run()
	return s
}

// msg queues a control message.
func (s *sender) msg(typ byte, payload []byte) {
	s.mu.Lock()
	if s.err == nil && !s.closing {
		s.ctrl = AppendMessage(s.ctrl, typ, payload)
		s.cond.Signal()
	}
	s.mu.Unlock()
}

// event queues one decoded event of leg, completed by a packet of time t.
func (s *sender) event(leg int, t time.Time, e *decode.Event) {
	b, err := json.Marshal(WireEvent{Leg: leg, T: t, Event: e})
	if err != nil {
		return
	}
	s.msg(MsgEvent, b)
}

// frame queues a frame of leg for trace's recording, whole when it fits
// the budget, else its first hdr bytes only; it reports whether it
// shortened it.
func (s *sender) frame(leg int, ts time.Time, orig int, data []byte, hdr int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.closing {
		return false
	}
	flags, keep := byte(0), data
	if len(s.frames)-s.fhead+len(data)+19 > s.budget && hdr < len(data) {
		flags, keep = FrameShortened, data[:hdr]
	}
	s.scratch = EncodeFrame(s.scratch[:0], leg, ts, orig, flags, keep)
	s.frames = AppendMessage(s.frames, MsgFrame, s.scratch)
	s.ends = append(s.ends, len(s.frames))
	s.cond.Signal()
	return flags != 0
}

// final queues the message that goes last, once every message and frame
// queued before it and after it has gone (MsgDone).
func (s *sender) final(typ byte, payload []byte) {
	s.mu.Lock()
	s.last = AppendMessage(nil, typ, payload)
	s.mu.Unlock()
}

// close writes what is queued and stops; it returns the first write's
// error.
func (s *sender) close() error {
	s.mu.Lock()
	s.closing = true
	s.cond.Signal()
	s.mu.Unlock()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *sender) run() {
	defer close(s.done)
	start := time.Now()
	var spare []byte
	for {
		s.mu.Lock()
		for len(s.ctrl) == 0 && s.ehead == len(s.ends) && !s.closing && s.err == nil {
			s.cond.Wait()
		}
		if s.err == nil && len(s.ctrl) == 0 && s.ehead == len(s.ends) && s.last != nil {
			s.ctrl, s.last = s.last, nil
		}
		if s.err != nil || len(s.ctrl) == 0 && s.ehead == len(s.ends) {
			s.mu.Unlock()
			return
		}
		var out []byte
		if len(s.ctrl) > 0 {
			out, s.ctrl = s.ctrl, spare[:0]
		} else {
			// Whole frame messages, up to frameChunk.
			end := s.ends[s.ehead]
			s.ehead++
			for s.ehead < len(s.ends) && s.ends[s.ehead]-s.fhead <= frameChunk {
				end = s.ends[s.ehead]
				s.ehead++
			}
			out = append(spare[:0], s.frames[s.fhead:end]...)
			s.fhead = end
			switch {
			case s.ehead == len(s.ends):
				s.frames, s.ends, s.fhead, s.ehead = s.frames[:0], s.ends[:0], 0, 0
			case s.fhead > len(s.frames)/2:
				// Move what is left to the front, now and then.
				n := copy(s.frames, s.frames[s.fhead:])
				s.frames = s.frames[:n]
				m := copy(s.ends, s.ends[s.ehead:])
				s.ends = s.ends[:m]
				for i := range s.ends {
					s.ends[i] -= s.fhead
				}
				s.fhead, s.ehead = 0, 0
			}
		}
		s.mu.Unlock()
		_, err := s.w.Write(out)
		total := s.sent.Add(int64(len(out)))
		spare = out
		if err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			return
		}
		if s.rate > 0 {
			if d := time.Duration(float64(total)/float64(s.rate)*float64(time.Second)) - time.Since(start); d > 0 {
				time.Sleep(d)
			}
		}
	}
}
