package agent

import (
	"testing"
	"time"

	"github.com/pftap/pftap/leg"
)

var t0 = time.Unix(1765000000, 0)

func testTap(kind leg.ID, m *matcher) *tap {
	return &tap{s: &session{m: m}, kind: kind, flows: map[flowKey]*cand{}}
}

func spdyCand(first time.Time, cs, sc string) *cand {
	c := &cand{first: first, status: 101}
	c.spdy[0].add(0, []byte(cs))
	c.spdy[1].add(0, []byte(sc))
	return c
}

// TestDecideL3: an L3 connection is trace's when it began inside one of
// trace's upgrade windows and carried what trace's SPDY session carried;
// one that carried other bytes, or began outside every window, is not; two
// that carried the same bytes stay held, then are left out as ambiguous.
func TestDecideL3(t *testing.T) {
	m := newMatcher(false)
	m.upgrade(Upgrade{ID: 2, Sent: t0, Uncertainty: time.Millisecond})
	m.upgrade(Upgrade{ID: 2, Answered: t0.Add(5 * time.Millisecond), Status: 101})
	m.spdyBytes(2, 0, 0, []byte("SYN_STREAM error; SYN_STREAM data; GET / HTTP/1.1"))
	m.spdyBytes(2, 1, 0, []byte("SYN_REPLY"))
	tp := testTap(leg.L3, m)
	now := t0.Add(2 * time.Second)

	mine := spdyCand(t0.Add(2*time.Millisecond), "SYN_STREAM error; SYN_STREAM data; GET / HTTP/1.1", "SYN_REPLY")
	other := spdyCand(t0.Add(3*time.Millisecond), "SYN_STREAM error; SYN_STREAM data; GET /marker HTTP/1.1", "SYN_REPLY")
	outside := spdyCand(t0.Add(-time.Second), "SYN_STREAM error", "")
	tp.undecided = []*cand{mine, other, outside}
	if v := tp.decideL3(other, now); v != leftOut {
		t.Errorf("other bytes: %v, want left out", v)
	}
	tp.undecided = []*cand{mine, outside}
	if v := tp.decideL3(outside, now); v != leftOut {
		t.Errorf("began before every window: %v, want left out", v)
	}
	// Not yet covered: trace has not seen all it carried.
	ahead := spdyCand(t0.Add(2*time.Millisecond), "SYN_STREAM error; SYN_STREAM data; GET / HTTP/1.1", "SYN_REPLY; more")
	tp.undecided = []*cand{ahead}
	if v := tp.decideL3(ahead, t0.Add(10*time.Millisecond)); v != undecided {
		t.Errorf("ahead of trace: %v, want undecided", v)
	}
	// Two alike: both held.
	twin := spdyCand(t0.Add(4*time.Millisecond), "SYN_STREAM error; SYN_STREAM data; GET / HTTP/1.1", "SYN_REPLY")
	tp.undecided = []*cand{mine, twin}
	if v := tp.decideL3(mine, t0.Add(10*time.Millisecond)); v != undecided || !mine.ambiguous {
		t.Errorf("with a twin: %v (ambiguous %v), want undecided", v, mine.ambiguous)
	}
	tp.undecided = []*cand{mine}
	if v := tp.decideL3(mine, t0.Add(10*time.Millisecond)); v != ours {
		t.Errorf("alone: %v, want ours", v)
	}
	if m.spdy[2].bound != mine || m.l3[2] != mine {
		t.Error("the session is not bound to its connection")
	}
}

// TestDecideL3Refused: an upgrade the runtime refused is no SPDY session:
// the one non-SPDY connection in the window of an upgrade that did not
// switch is trace's.
func TestDecideL3Refused(t *testing.T) {
	m := newMatcher(false)
	m.upgrade(Upgrade{ID: 1, Sent: t0})
	m.upgrade(Upgrade{ID: 1, Answered: t0.Add(20 * time.Millisecond), Status: 500})
	tp := testTap(leg.L3, m)
	c := &cand{first: t0.Add(5 * time.Millisecond), status: 404}
	tp.undecided = []*cand{c}
	if v := tp.decideL3(c, t0.Add(time.Second)); v != ours {
		t.Errorf("%v, want ours", v)
	}
}

// TestDecideL2: the TLS connection to the kubelet is told by time: the one
// that began in the window; of two, the one that began last before the
// kubelet dialled the runtime.
func TestDecideL2(t *testing.T) {
	m := newMatcher(false)
	m.upgrade(Upgrade{ID: 1, Sent: t0, Answered: t0.Add(20 * time.Millisecond), Status: 101})
	tp := testTap(leg.L2Wire, m)
	a := &cand{first: t0.Add(time.Millisecond)}
	b := &cand{first: t0.Add(6 * time.Millisecond)}
	late := &cand{first: t0.Add(5 * time.Second)}
	tp.undecided = []*cand{late}
	if v := tp.decideL2(late, t0.Add(10*time.Second)); v != leftOut {
		t.Errorf("outside the window: %v", v)
	}
	tp.undecided = []*cand{a, b}
	if v := tp.decideL2(a, t0.Add(time.Second)); v != undecided {
		t.Errorf("two in the window, no L3 yet: %v", v)
	}
	m.l3[1] = &cand{first: t0.Add(8 * time.Millisecond)}
	if v := tp.decideL2(a, t0.Add(time.Second)); v != undecided {
		t.Errorf("the earlier of two: %v", v)
	}
	if v := tp.decideL2(b, t0.Add(time.Second)); v != ours {
		t.Errorf("the one just before L3: %v", v)
	}
}

// TestDecideL4: a connection on the pod's lo is trace's when it carried a
// data stream's first bytes, after the stream opened; the same bytes on a
// second connection find no stream left; other bytes are not trace's; a
// connection refused at once is matched by time.
func TestDecideL4(t *testing.T) {
	m := newMatcher(false)
	m.streamOpened(1, "0", t0)
	m.streamData(1, "0", 0, 0, []byte("GET / HTTP/1.1\r\n"))
	tp := testTap(leg.L4, m)
	c := &cand{first: t0.Add(time.Millisecond), prefix: [2][]byte{[]byte("GET / HTTP/1.1\r\nHost")}}
	if v := tp.decideL4(c, t0.Add(10*time.Millisecond)); v != ours {
		t.Errorf("the stream's bytes: %v", v)
	}
	again := &cand{first: t0.Add(2 * time.Millisecond), prefix: [2][]byte{[]byte("GET / HTTP/1.1\r\n")}}
	if v := tp.decideL4(again, t0.Add(3*time.Second)); v != leftOut {
		t.Errorf("a second connection with the same bytes: %v", v)
	}
	other := &cand{first: t0.Add(2 * time.Millisecond), prefix: [2][]byte{[]byte("GET /marker HTTP/1.1")}}
	m.streamOpened(1, "1", t0)
	m.streamData(1, "1", 0, 0, []byte("GET / HTTP/1.1\r\n"))
	if v := tp.decideL4(other, t0.Add(200*time.Millisecond)); v != leftOut {
		t.Errorf("other bytes: %v", v)
	}
	refused := &cand{first: t0.Add(time.Millisecond), rst: true}
	if v := tp.decideL4(refused, t0.Add(10*time.Millisecond)); v != ours {
		t.Errorf("refused at once: %v", v)
	}
}
