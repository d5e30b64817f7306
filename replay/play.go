package replay

import (
	"bytes"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/spdystream"

	"github.com/pftap/pftap/decode"
)

// liveStream is one stream of a live session: what the peer has sent on
// it so far, and whether it ended.
type liveStream struct {
	st     *spdystream.Stream
	notify func()

	mu      sync.Mutex
	headers http.Header
	frames  [][]byte
	n       int
	ended   bool
}

func newLiveStream(st *spdystream.Stream, notify func()) *liveStream {
	ls := &liveStream{st: st, notify: notify, headers: st.Headers()}
	go ls.read()
	return ls
}

// read takes every DATA frame the peer sends until the stream ends.
func (ls *liveStream) read() {
	for {
		b, err := ls.st.ReadData()
		ls.mu.Lock()
		if err != nil {
			ls.ended = true
		} else {
			ls.frames = append(ls.frames, bytes.Clone(b))
			ls.n += len(b)
		}
		ls.mu.Unlock()
		ls.notify()
		if err != nil {
			return
		}
	}
}

func (ls *liveStream) state() (n int, ended bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.n, ls.ended
}

func (ls *liveStream) data() ([]byte, [][]byte) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return bytes.Join(ls.frames, nil), append([][]byte(nil), ls.frames...)
}

// player plays one recorded request: it does what the recorded side did
// (role: FromServer for a recorded apiserver, ToServer for a recorded
// client) and waits for the peer to do what the other recorded side did,
// comparing as it goes.
type player struct {
	role decode.Dir
	rec  *Request
	num  int
	opts options
	// report receives mismatches.
	report func(Mismatch)
	// create opens a stream (client role).
	create func(h http.Header) (*spdystream.Stream, error)
	done   <-chan struct{}

	changed chan struct{}
	mu      sync.Mutex
	streams map[string]*liveStream
	replies map[string]bool // client role: streams whose reply was awaited
	// answered are the recorded replies already sent by answer.
	answered map[*Frame]bool
	// ended marks the streams our side closed or reset, and failed that
	// our side reported an error; racy the streams on which the recorded
	// peer sent bytes after that: whether a peer still sends them is a
	// race (kubectl may reset first), so Semantic mode accepts any prefix.
	ended  map[string]bool
	failed bool
	racy   map[string]bool
}

func newPlayer(role decode.Dir, rec *Request, num int, o options, report func(Mismatch), done <-chan struct{}) *player {
	return &player{role: role, rec: rec, num: num, opts: o, report: report, done: done,
		changed: make(chan struct{}, 1), streams: map[string]*liveStream{}, replies: map[string]bool{}, answered: map[*Frame]bool{}, ended: map[string]bool{}, racy: map[string]bool{}}
}

func (p *player) poke() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// attach gives the player a stream the peer opened.
func (p *player) attach(typ string, st *spdystream.Stream) {
	p.mu.Lock()
	if _, dup := p.streams[typ]; !dup {
		p.streams[typ] = newLiveStream(st, p.poke)
	}
	p.mu.Unlock()
	p.poke()
}

// answer replies to (or refuses) a stream the client opened, as the
// recorded server did. It must run in spdystream's handler, before the
// handler returns: spdystream drops DATA that arrives on a stream before
// it is marked replied, and a reply sent from another goroutine is
// marked only after the client may already have answered it.
func (p *player) answer(typ string, st *spdystream.Stream) {
	id := p.rec.Streams[typ]
	for _, f := range p.rec.Frames {
		if f.Stream != id || f.Dir != decode.FromServer {
			continue
		}
		switch f.Type {
		case "SYN_REPLY":
			st.SendReply(f.Headers, f.Fin)
		case "RST_STREAM":
			st.Refuse()
		default:
			continue
		}
		p.mu.Lock()
		p.answered[f] = true
		p.mu.Unlock()
		return
	}
	st.SendReply(http.Header{}, false)
}

func (p *player) stream(typ string) *liveStream {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.streams[typ]
}

func (p *player) mismatch(stream, what, diff string) {
	p.report(Mismatch{Request: p.num, RequestID: p.rec.ID, Stream: stream, What: what, Diff: diff})
}

// waitFor waits until cond holds, the wait runs out, or the session ends
// (and a moment after, for the streams to see their end). When cond does
// not hold, why says what ended the wait.
func (p *player) waitFor(cond func() bool) (ok bool, why string) {
	t := time.NewTimer(p.opts.wait)
	defer t.Stop()
	done := p.done
	why = "within " + p.opts.wait.String()
	for {
		if cond() {
			return true, ""
		}
		select {
		case <-p.changed:
		case <-t.C:
			return cond(), why
		case <-done:
			done = nil
			why = "before the session ended"
			t.Reset(250 * time.Millisecond)
		}
	}
}

func (p *player) peer() string {
	if p.role == decode.FromServer {
		return "the client"
	}
	return "the server"
}

// run plays the request to its end.
func (p *player) run() {
	typeOf := map[uint32]string{}
	for typ, id := range p.rec.Streams {
		typeOf[id] = typ
	}
	want := map[string][]byte{} // the peer's recorded bytes so far, per stream
	var prev time.Time
	last := time.Now()
	for _, f := range p.rec.Frames {
		typ := typeOf[f.Stream]
		if f.Dir == p.role {
			if p.opts.timing && !prev.IsZero() {
				if d := f.Time.Sub(prev) - time.Since(last); d > 0 {
					time.Sleep(d)
				}
			}
			p.do(typ, f)
		} else {
			p.expect(typ, f, want)
		}
		prev, last = f.Time, time.Now()
	}
	p.final(want)
}

// do performs one recorded frame of our side.
func (p *player) do(typ string, f *Frame) {
	ls := p.stream(typ)
	switch {
	case f.Type == "RST_STREAM", f.Type == "DATA" && f.Fin:
		p.ended[typ] = true
	}
	if f.Type == "DATA" && typ == "error" && len(f.Data) > 0 {
		p.failed = true
	}
	switch f.Type {
	case "SYN_STREAM":
		if p.create == nil {
			return
		}
		st, err := p.create(f.Headers)
		if err != nil {
			p.mismatch(typ, fmt.Sprintf("could not open the %s stream: %v", typ, err), "")
			return
		}
		p.attach(typ, st)
	case "SYN_REPLY":
		// Sent by answer.
	case "RST_STREAM":
		p.mu.Lock()
		done := p.answered[f]
		p.mu.Unlock()
		if ls == nil || done {
			return
		}
		if p.role == decode.FromServer && strings.Contains(f.Status, "REFUSED") {
			ls.st.Refuse()
		} else {
			ls.st.Reset()
		}
	case "DATA":
		if ls != nil {
			ls.st.WriteData(f.Data, f.Fin)
		}
	}
}

// expect waits for the peer to do what the recorded peer did in f.
func (p *player) expect(typ string, f *Frame, want map[string][]byte) {
	switch f.Type {
	case "SYN_STREAM":
		if ok, why := p.waitFor(func() bool { return p.stream(typ) != nil }); !ok {
			p.mismatch(typ, fmt.Sprintf("%s did not open the %s stream (port %s) %s", p.peer(), typ, f.Headers.Get("port"), why), "")
			return
		}
		p.compareHeaders(typ, f.Headers, p.stream(typ).headers)
	case "SYN_REPLY", "RST_STREAM":
		ls := p.stream(typ)
		if ls == nil {
			return
		}
		if p.role == decode.ToServer && !p.replied(typ) {
			err := ls.st.WaitTimeout(p.opts.wait)
			p.setReplied(typ)
			switch {
			case f.Type == "SYN_REPLY" && err != nil:
				p.mismatch(typ, fmt.Sprintf("the server did not accept the %s stream: %v (recorded: SYN_REPLY)", typ, err), "")
			case f.Type == "RST_STREAM" && err == nil:
				p.mismatch(typ, fmt.Sprintf("the server accepted the %s stream (recorded: RST_STREAM %s)", typ, f.Status), "")
			}
			return
		}
		if f.Type != "RST_STREAM" {
			return
		}
		if ok, why := p.waitFor(func() bool { _, e := ls.state(); return e }); !ok {
			p.mismatch(typ, fmt.Sprintf("%s did not reset the %s stream %s (recorded: RST_STREAM %s)", p.peer(), typ, why, f.Status), "")
		}
	case "DATA":
		ls := p.stream(typ)
		if ls == nil {
			return
		}
		want[typ] = append(want[typ], f.Data...)
		w := want[typ]
		if p.ended[typ] || p.failed {
			// The recorded peer sent these after our side ended the
			// stream or failed the request: do not wait for them.
			p.racy[typ] = true
			return
		}
		wantMsgs, isHTTP := httpMessages(w)
		ok, why := p.waitFor(func() bool {
			n, ended := ls.state()
			if n >= len(w) || ended {
				return true
			}
			if p.opts.mode == Semantic && isHTTP && wantMsgs > 0 {
				got, _ := ls.data()
				if m, _ := httpMessages(got); m >= wantMsgs {
					return true
				}
			}
			return false
		})
		if !ok {
			got, _ := ls.data()
			p.mismatch(typ, fmt.Sprintf("%s did not send the recorded %d bytes on the %s stream %s; it sent %d", p.peer(), len(w), typ, why, len(got)), "")
		}
		if f.Fin {
			p.expectEnd(typ, ls)
		}
	}
}

func (p *player) expectEnd(typ string, ls *liveStream) {
	if ok, why := p.waitFor(func() bool { _, e := ls.state(); return e }); !ok {
		p.mismatch(typ, fmt.Sprintf("%s did not close the %s stream %s (recorded: FIN)", p.peer(), typ, why), "")
	}
}

func (p *player) replied(typ string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.replies[typ]
}

func (p *player) setReplied(typ string) {
	p.mu.Lock()
	p.replies[typ] = true
	p.mu.Unlock()
}

// compareHeaders checks a peer's SYN_STREAM headers against the recorded
// ones: the stream type and port always, everything in Strict mode.
func (p *player) compareHeaders(typ string, want, got http.Header) {
	keys := []string{"Streamtype", "Port"}
	if p.opts.mode == Strict {
		keys = keys[:0]
		for k := range want {
			keys = append(keys, k)
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
	}
	var diff strings.Builder
	for _, k := range keys {
		w, g := strings.Join(want.Values(k), ","), strings.Join(got.Values(k), ",")
		if w != g {
			fmt.Fprintf(&diff, "- %s: %s\n+ %s: %s\n", strings.ToLower(k), w, strings.ToLower(k), g)
		}
	}
	if diff.Len() > 0 {
		p.mismatch(typ, fmt.Sprintf("%s opened the %s stream with other headers", p.peer(), typ), diff.String())
	}
}

// final compares all the peer sent on each stream with the recording.
func (p *player) final(want map[string][]byte) {
	types := make([]string, 0, len(p.rec.Streams))
	for typ := range p.rec.Streams {
		types = append(types, typ)
	}
	sort.Strings(types)
	for _, typ := range types {
		ls := p.stream(typ)
		if ls == nil {
			continue
		}
		got, frames := ls.data()
		w := want[typ]
		if p.racy[typ] && p.opts.mode == Semantic && len(got) <= len(w) && sameBytes(p.opts.mode, w[:len(got)], got) {
			continue
		}
		if !sameBytes(p.opts.mode, w, got) {
			p.mismatch(typ, fmt.Sprintf("%s sent other bytes than the recorded %s (%d recorded, %d received)", p.peer(), sideName(opposite(p.role)), len(w), len(got)), diffBytes(p.opts.mode, w, got))
			continue
		}
		if p.opts.mode == Strict {
			var wf []int
			for _, f := range p.rec.Frames {
				if f.Type == "DATA" && f.Dir != p.role && f.Stream == p.rec.Streams[typ] && len(f.Data) > 0 {
					wf = append(wf, len(f.Data))
				}
			}
			var gf []int
			for _, b := range frames {
				gf = append(gf, len(b))
			}
			if fmt.Sprint(wf) != fmt.Sprint(gf) {
				p.mismatch(typ, "the same bytes in other DATA frames", fmt.Sprintf("- frame sizes %v\n+ frame sizes %v\n", wf, gf))
			}
		}
	}
}

// sideName names who sent in direction d.
func sideName(d decode.Dir) string {
	if d == decode.ToServer {
		return "client"
	}
	return "server"
}

func opposite(d decode.Dir) decode.Dir {
	if d == decode.ToServer {
		return decode.FromServer
	}
	return decode.ToServer
}
