package trace

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pftap/pftap/agent"
	"github.com/pftap/pftap/decode"
)

// ErrAgentNotPinned is wrapped by the error of a connection to an agent
// whose certificate trace was not told to trust: nothing was sent to it.
var ErrAgentNotPinned = errors.New("the agent's certificate is not pinned")

// ErrAgentVersion is wrapped by the error of a connection to an agent that
// speaks another protocol version.
var ErrAgentVersion = errors.New("the agent speaks another protocol version")

// dialAgent connects to a pftap agent, makes sure it is the agent the
// user meant (its certificate's SHA-256 is the one pinned, or the one
// remembered for its address) before anything is sent, authenticates with
// the token and asks it to tap the pod; the agent's messages follow on the
// connection (agentLink).
func dialAgent(ctx context.Context, o Options, podIP string) (*agentLink, error) {
	pin := o.AgentFingerprint
	remembered := false
	if pin == "" && o.KnownAgents != "" {
		if fp, err := lookupKnownAgent(o.KnownAgents, o.Agent); err == nil && fp != "" {
			pin, remembered = fp, true
		}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("the agent sent no certificate")
			}
			sum := sha256.Sum256(raw[0])
			got := hex.EncodeToString(sum[:])
			switch {
			case pin == "":
				return fmt.Errorf("%w: it presents sha256 %s; check that against what pftap agent printed, then pass --agent-fingerprint %s (nothing, not even the token, was sent to it)", ErrAgentNotPinned, got, got)
			case remembered && !strings.EqualFold(got, pin):
				return fmt.Errorf("%w: it presents sha256 %s, but %s was remembered for %s in %s: someone else may be answering there; if the agent was restarted with a new certificate, pass --agent-fingerprint %s (nothing was sent to it)", ErrAgentNotPinned, got, pin, o.Agent, o.KnownAgents, got)
			case !strings.EqualFold(got, pin):
				return fmt.Errorf("%w: it presents sha256 %s, not the pinned %s (nothing was sent to it)", ErrAgentNotPinned, got, pin)
			}
			return nil
		}}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", o.Agent)
	if err != nil {
		return nil, fmt.Errorf("pftap agent at %s: %w", o.Agent, err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	enc := json.NewEncoder(c)
	if err := enc.Encode(agent.Request{Version: agent.ProtocolVersion, Token: o.AgentToken, PodIP: podIP, Frames: o.Write != "",
		NodeWide: o.NodeWide, Verbosity: o.Verbosity}); err != nil {
		c.Close()
		return nil, fmt.Errorf("pftap agent at %s: %w", o.Agent, err)
	}
	br := bufio.NewReaderSize(c, 256<<10)
	var h agent.Hello
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("pftap agent at %s: no answer: %w", o.Agent, err)
		}
		h = agent.Hello{}
		if err := json.Unmarshal(line, &h); err != nil {
			c.Close()
			return nil, fmt.Errorf("pftap agent at %s: %w", o.Agent, err)
		}
		if h.Probe <= 0 {
			break
		}
		// The agent finds the connections that carry this session.
		if h.Probe > 1<<20 {
			c.Close()
			return nil, fmt.Errorf("pftap agent at %s: a probe of %d bytes", o.Agent, h.Probe)
		}
		if _, err := io.CopyN(io.Discard, br, int64(h.Probe)); err != nil {
			c.Close()
			return nil, fmt.Errorf("pftap agent at %s: %w", o.Agent, err)
		}
		if err := enc.Encode(agent.Request{Probed: h.Probe}); err != nil {
			c.Close()
			return nil, fmt.Errorf("pftap agent at %s: %w", o.Agent, err)
		}
	}
	// An agent of another version: one line, and what to do.
	if h.Version != agent.ProtocolVersion {
		c.Close()
		return nil, fmt.Errorf("pftap agent at %s: %w: %s", o.Agent, ErrAgentVersion, agent.VersionMismatch(agent.ProtocolVersion, h.Version, "agent"))
	}
	if h.Error != "" {
		c.Close()
		if strings.HasPrefix(h.Error, "this agent speaks protocol") {
			return nil, fmt.Errorf("pftap agent at %s: %w: %s", o.Agent, ErrAgentVersion, h.Error)
		}
		return nil, fmt.Errorf("pftap agent at %s: %s", o.Agent, h.Error)
	}
	c.SetDeadline(time.Time{})
	if o.KnownAgents != "" && !remembered && pin != "" {
		if err := rememberAgent(o.KnownAgents, o.Agent, pin); err == nil && o.Log != nil {
			fmt.Fprintf(o.Log, "pftap trace: remembered the agent at %s (sha256 %s) in %s\n", o.Agent, pin, o.KnownAgents)
		}
	}
	l := &agentLink{Conn: c, br: br, hello: h, addr: o.Agent, stop: make(chan struct{}), marks: map[[2]int]*markState{},
		clockReady: make(chan struct{}), done: make(chan struct{})}
	l.cond = sync.NewCond(&l.mu)
	go l.write()
	return l, nil
}

// agentLink is trace's side of an agent session: it tells the agent about
// trace's own port-forward as it happens (its upgrades, the bytes of its
// SPDY sessions, see agent/match.go), keeps the session alive, and
// estimates the agent's clock.
type agentLink struct {
	net.Conn
	br    *bufio.Reader
	hello agent.Hello
	addr  string
	stop  chan struct{}
	once  sync.Once

	mu    sync.Mutex
	cond  *sync.Cond
	queue []byte // messages waiting to be written
	wdone bool
	werr  error
	// marks: how far trace has told each of its SPDY sessions' direction.
	marks map[[2]int]*markState
	// The clock estimate: the agent's clock minus this machine's, and
	// how far off it may be (half the best ping's round trip).
	offset, unc time.Duration
	clockOK     bool
	clockReady  chan struct{}
	clockOnce   sync.Once
	// done is closed when the agent said it sent everything (MsgDone).
	done     chan struct{}
	doneOnce sync.Once
	// last is when the agent's last message came (Unix ns).
	last atomic.Int64
}

// heard is when the agent's last message came.
func (l *agentLink) heard() time.Time { return time.Unix(0, l.last.Load()) }

type markState struct {
	pos int64
	crc uint32
}

// send queues a message for the agent: the tap's hooks call it from the
// client's own reads and writes, which must not wait for the agent.
func (l *agentLink) send(typ byte, payload []byte) {
	l.mu.Lock()
	if !l.wdone {
		l.queue = agent.AppendMessage(l.queue, typ, payload)
		l.cond.Signal()
	}
	l.mu.Unlock()
}

func (l *agentLink) write() {
	t := time.NewTicker(agent.KeepaliveEvery)
	defer t.Stop()
	go func() {
		for {
			select {
			case <-l.stop:
				l.mu.Lock()
				l.wdone = true
				l.cond.Signal()
				l.mu.Unlock()
				return
			case <-t.C:
				l.send(agent.MsgKeepalive, nil)
			}
		}
	}()
	var spare []byte
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.wdone {
			l.cond.Wait()
		}
		if len(l.queue) == 0 {
			l.mu.Unlock()
			return
		}
		out := l.queue
		l.queue = spare[:0]
		l.mu.Unlock()
		if _, err := l.Conn.Write(out); err != nil {
			l.mu.Lock()
			l.werr, l.wdone = err, true
			l.mu.Unlock()
			return
		}
		spare = out
	}
}

// ping asks the agent for its clock; the pong is read by the reader.
func (l *agentLink) ping() {
	l.send(agent.MsgPing, binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano())))
}

// pong takes the agent's answer to a ping: the tightest round trip so far
// gives the estimate.
func (l *agentLink) pong(p []byte) {
	if len(p) != 16 {
		return
	}
	now := time.Now()
	sent := time.Unix(0, int64(binary.BigEndian.Uint64(p)))
	at := time.Unix(0, int64(binary.BigEndian.Uint64(p[8:])))
	rtt := now.Sub(sent)
	if rtt < 0 {
		return
	}
	mid := sent.Add(rtt / 2)
	l.mu.Lock()
	if !l.clockOK || rtt/2 < l.unc {
		l.offset, l.unc, l.clockOK = at.Sub(mid), rtt/2+time.Millisecond, true
	}
	l.mu.Unlock()
	l.clockOnce.Do(func() { close(l.clockReady) })
}

// agentTime puts a time of this machine on the agent's clock.
func (l *agentLink) agentTime(t time.Time) (time.Time, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.IsZero() {
		return t, l.unc
	}
	return t.Add(l.offset), l.unc
}

// observe takes an event of trace's own leg as it is decoded: its
// upgrades go to the agent.
func (l *agentLink) observe(e *decode.Event) {
	var u agent.Upgrade
	switch e.Kind {
	case decode.KindHTTPRequest:
		u = agent.Upgrade{ID: e.Conn, Sent: e.Time}
	case decode.KindHTTPResponse:
		u = agent.Upgrade{ID: e.Conn, Answered: e.Time, Status: e.Status}
	case decode.KindClose:
		u = agent.Upgrade{ID: e.Conn, Closed: e.Time}
	default:
		return
	}
	u.Sent, u.Uncertainty = l.agentTime(u.Sent)
	u.Answered, _ = l.agentTime(u.Answered)
	u.Closed, _ = l.agentTime(u.Closed)
	b, err := json.Marshal(u)
	if err != nil {
		return
	}
	l.send(agent.MsgUpgrade, b)
}

// spdyBytes takes bytes of trace's own SPDY session: the first
// agent.SPDYPrefix of each direction go to the agent, and beyond them the
// digest at every multiple of it.
func (l *agentLink) spdyBytes(b *decode.SPDYBytes) {
	if b.Midstream {
		return
	}
	d := 0
	if b.Dir == decode.FromServer {
		d = 1
	}
	l.mu.Lock()
	k := [2]int{b.Conn, d}
	m := l.marks[k]
	if m == nil {
		m = &markState{}
		l.marks[k] = m
	}
	if b.Offset != m.pos {
		l.mu.Unlock()
		return // a gap: nothing more can be told
	}
	var prefix []byte
	var grid [][2]int64
	data := b.Data
	if m.pos < agent.SPDYPrefix {
		n := min(int64(len(data)), agent.SPDYPrefix-m.pos)
		prefix = agent.EncodeSPDY(nil, b.Conn, d, m.pos, data[:n])
	}
	for len(data) > 0 {
		next := (m.pos/agent.SPDYPrefix + 1) * agent.SPDYPrefix
		n := min(int64(len(data)), next-m.pos)
		m.crc = crc32.Update(m.crc, crc32.IEEETable, data[:n])
		m.pos += n
		data = data[n:]
		if m.pos == next {
			grid = append(grid, [2]int64{m.pos, int64(m.crc)})
		}
	}
	l.mu.Unlock()
	if prefix != nil {
		l.send(agent.MsgSPDY, prefix)
	}
	for _, g := range grid {
		l.send(agent.MsgGrid, agent.EncodeGrid(nil, b.Conn, d, g[0], uint32(g[1])))
	}
}

// end tells the agent trace is done: it finishes and sends its finals.
func (l *agentLink) end() { l.send(agent.MsgEnd, nil) }

func (l *agentLink) Close() error {
	l.once.Do(func() { close(l.stop) })
	return l.Conn.Close()
}

// clockSet says whether the agent answered a ping.
func (l *agentLink) clockSet() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.clockOK
}

// readAgent takes the agent's messages: its legs' events, TLS records,
// counters and finals into the pipeline, its frames into the recording.
func (s *Session) readAgent() {
	defer close(s.agentDone)
	link := s.agent
	nlegs := len(link.hello.Legs)
	fail := func(err error) {
		s.mu.Lock()
		if s.agentErr == nil {
			s.agentErr = fmt.Errorf("pftap agent's stream: %w", err)
		}
		s.mu.Unlock()
	}
	var buf []byte
	var recs []decode.TLSRecord
	for {
		typ, p, err := agent.ReadMessage(link.br, buf)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				select {
				case <-link.done:
				default:
					fail(err)
				}
			}
			return
		}
		buf = p
		link.last.Store(time.Now().UnixNano())
		switch typ {
		case agent.MsgEvent:
			var w agent.WireEvent
			if json.Unmarshal(p, &w) != nil || w.Event == nil || w.Leg < 0 || w.Leg >= nlegs {
				fail(errors.New("a malformed event"))
				return
			}
			s.pipe.RemoteEvent(1+w.Leg, w.T, w.Event)
		case agent.MsgRecords:
			leg, rs, err := agent.DecodeRecords(p, recs[:0])
			if err != nil || leg >= nlegs {
				fail(errors.New("malformed TLS records"))
				return
			}
			s.pipe.RemoteRecords(1+leg, rs)
			recs = rs
		case agent.MsgStatus:
			var st agent.Status
			if json.Unmarshal(p, &st) != nil {
				fail(errors.New("a malformed status"))
				return
			}
			for i, ls := range st.Legs {
				if i < nlegs {
					s.pipe.RemoteStatus(1+i, int64(ls.Bytes), ls.Drops, ls.Conns, ls.Requests)
				}
			}
			s.mu.Lock()
			s.agentStatus = st
			s.mu.Unlock()
		case agent.MsgFrame:
			leg, ts, orig, flags, data, err := agent.DecodeFrame(p)
			if err != nil || leg >= nlegs {
				fail(errors.New("a malformed frame"))
				return
			}
			note := ""
			if flags&agent.FrameShortened != 0 {
				note = fmt.Sprintf("payload not sent by pftap agent, the link to trace being too slow (%d of %d bytes kept)", len(data), orig)
			}
			s.pipe.RemoteFrame(1+leg, ts, data, orig, note)
		case agent.MsgFinal:
			var f agent.Final
			if json.Unmarshal(p, &f) != nil || f.Leg < 0 || f.Leg >= nlegs {
				fail(errors.New("a malformed final"))
				return
			}
			s.pipe.RemoteFinal(1+f.Leg, f.Summary, f.Flows)
			s.pipe.RemoteStatus(1+f.Leg, int64(f.Status.Bytes), f.Status.Drops, 0, 0)
			s.mu.Lock()
			s.agentFinal[f.Leg] = f.Status
			s.mu.Unlock()
		case agent.MsgPong:
			link.pong(p)
		case agent.MsgDone:
			link.doneOnce.Do(func() { close(link.done) })
		}
	}
}
