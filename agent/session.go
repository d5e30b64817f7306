package agent

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pftap/pftap/capture"
)

// A session is one trace's, from the Hello on: every leg captured, held
// back and decoded on the node (gate.go), what is trace's sent as events,
// and what trace tells the agent taken in.
type session struct {
	a    *Agent
	c    net.Conn
	br   *bufio.Reader
	req  Request
	m    *matcher
	out  *sender
	taps []*tap
	// held is what every tap holds back, in bytes.
	held atomic.Int64
}

// Session timing: how often held connections are looked at again, and
// how often the counters (and the TLS records) are sent.
const (
	decideEvery = 10 * time.Millisecond
	statusEvery = 50 * time.Millisecond
)

func newSession(a *Agent, c net.Conn, br *bufio.Reader, req Request) *session {
	return &session{a: a, c: c, br: br, req: req, m: newMatcher(req.NodeWide), out: newSender(c, a.opts.MaxSendRate)}
}

func (s *session) now() time.Time { return time.Now().Add(s.a.opts.ClockOffset) }

// run serves the session until trace ends it (MsgEnd: the agent finishes
// its decoding and sends the finals) or goes away.
func (s *session) run(srcs []*capture.Source, legs []capture.Leg) {
	for i, l := range legs {
		s.taps = append(s.taps, newTap(s, i, l, srcs[i]))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, src := range srcs {
		wg.Add(1)
		go func(t *tap, src *capture.Source) {
			defer wg.Done()
			capture.Drain(src, stop, t.frame)
		}(s.taps[i], src)
	}
	poke := make(chan struct{}, 1)
	tickDone := make(chan struct{})
	tickStop := make(chan struct{})
	go func() {
		defer close(tickDone)
		s.tick(tickStop, poke)
	}()
	ended := s.read(poke)
	close(stop)
	wg.Wait()
	close(tickStop)
	<-tickDone
	if ended {
		s.finish()
	}
	s.out.close()
}

// tick decides what is held once trace or another leg told more, sends
// the counters and the records.
func (s *session) tick(stop <-chan struct{}, poke <-chan struct{}) {
	decide := time.NewTicker(decideEvery)
	defer decide.Stop()
	status := time.NewTicker(statusEvery)
	defer status.Stop()
	for {
		select {
		case <-stop:
			return
		case <-poke:
		case <-decide.C:
		case <-status.C:
			s.sendStatus()
			continue
		}
		now := s.now()
		for _, t := range s.taps {
			t.reevaluate(now)
		}
	}
}

func (s *session) sendStatus() {
	st := Status{}
	for _, t := range s.taps {
		ls, recs := t.status()
		if len(recs) > 0 {
			s.out.msg(MsgRecords, EncodeRecords(nil, t.idx, recs))
		}
		st.Legs = append(st.Legs, ls)
	}
	st.Sent = s.out.sent.Load()
	if b, err := json.Marshal(st); err == nil {
		s.out.msg(MsgStatus, b)
	}
}

// finish decides what is still held, finishes each leg's decoding and
// sends its result, then MsgDone.
func (s *session) finish() {
	for _, t := range s.taps {
		sum, st, recs := t.finish()
		if len(recs) > 0 {
			s.out.msg(MsgRecords, EncodeRecords(nil, t.idx, recs))
		}
		f := Final{Leg: t.idx, Summary: sum, Flows: t.corr.Flows(), Status: st}
		if b, err := json.Marshal(f); err == nil {
			s.out.msg(MsgFinal, b)
		}
	}
	s.sendStatus()
	s.out.final(MsgDone, nil)
}

// read takes trace's messages until MsgEnd (true) or the connection fails
// or goes silent for Silence (false).
func (s *session) read(poke chan<- struct{}) bool {
	nudge := func() {
		select {
		case poke <- struct{}{}:
		default:
		}
	}
	var buf []byte
	for {
		s.c.SetReadDeadline(time.Now().Add(Silence))
		typ, p, err := ReadMessage(s.br, buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				s.a.logf("%s: nothing heard from trace for %s: ending the session", s.c.RemoteAddr(), Silence)
			}
			return false
		}
		buf = p
		switch typ {
		case MsgEnd:
			return true
		case MsgKeepalive:
		case MsgPing:
			if len(p) == 8 {
				s.out.msg(MsgPong, binary.BigEndian.AppendUint64(append([]byte(nil), p...), uint64(s.now().UnixNano())))
			}
		case MsgUpgrade:
			var u Upgrade
			if json.Unmarshal(p, &u) == nil {
				s.m.upgrade(u)
				nudge()
			}
		case MsgSPDY:
			if id, dir, off, data, err := DecodeSPDY(p); err == nil {
				s.m.spdyBytes(id, dir, off, data)
				nudge()
			}
		case MsgGrid:
			if id, dir, k, crc, err := DecodeGrid(p); err == nil {
				s.m.gridMark(id, dir, k, crc)
			}
		}
	}
}
