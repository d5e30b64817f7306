package agent

import (
	"sort"
	"time"

	"github.com/pftap/pftap/leg"
)

// The rules of match.go, one leg kind each. Each is called with the tap's
// lock held and takes the matcher's; it returns ours, leftOut, or
// undecided (wait for more).

// decideL3: the kubelet's connection to the runtime's streaming server.
func (t *tap) decideL3(c *cand, now time.Time) candState {
	m := t.s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	in, maybe := m.windows(c.first, now)
	late := now.Sub(c.first) > decideWithin
	if len(in) == 0 {
		if !maybe || late {
			return leftOut
		}
		return undecided
	}
	isSPDY := c.spdy[0].pos > 0 || c.spdy[1].pos > 0 || c.status == 101
	if isSPDY {
		differs, unknown := true, false
		for _, u := range in {
			ts := m.spdy[u.ID]
			if ts == nil {
				unknown = true // trace's bytes of it may be on their way
				continue
			}
			cons, cov := ts.agrees(c)
			if !cons {
				continue
			}
			differs = false
			if !cov || c.spdy[0].pos == 0 {
				continue // trace has not yet seen all this carried
			}
			if ts.bound != nil {
				// The session is found already: this one carried the
				// same bytes as it so far.
				c.ambiguous = true
				continue
			}
			// No other connection of the window may say the same.
			alone := true
			for _, o := range t.undecided {
				if o == c || o.state != undecided {
					continue
				}
				if i, _ := u.window(o.first); !i {
					continue
				}
				if oc, ocov := ts.agrees(o); oc && ocov && o.spdy[0].pos > 0 {
					alone = false
					o.ambiguous, c.ambiguous = true, true
				}
			}
			if !alone {
				continue
			}
			ts.bound = c
			m.l3[u.ID] = c
			c.ambiguous = false
			return ours
		}
		if differs && !unknown && (c.spdy[0].pos > 0 || c.spdy[1].pos > 0) {
			return leftOut
		}
		if late {
			return leftOut
		}
		return undecided
	}
	// Not (yet) SPDY: an upgrade the runtime refused, a runtime that
	// speaks TLS, one that never answered. It is trace's when it is the
	// one such connection in a window of an upgrade that did not switch.
	known := c.status != 0 || c.tls || c.closes >= 2 || c.closed()
	for _, u := range in {
		if m.l3[u.ID] != nil || u.Status == 101 {
			continue
		}
		_, open := u.window(c.first)
		if !known && (open || now.Sub(windowEnd(u)) < 100*time.Millisecond) && !late {
			return undecided
		}
		alone := true
		for _, o := range t.undecided {
			if o != c && o.state == undecided && o.spdy[0].pos == 0 && o.spdy[1].pos == 0 && o.status != 101 {
				if i, _ := u.window(o.first); i {
					alone = false
					o.ambiguous, c.ambiguous = true, true
				}
			}
		}
		if alone {
			m.l3[u.ID] = c
			c.ambiguous = false
			return ours
		}
	}
	if late || !maybe && allClosed(in) {
		return leftOut
	}
	return undecided
}

func windowEnd(u *Upgrade) time.Time {
	if !u.Answered.IsZero() {
		return u.Answered
	}
	return u.Closed
}

func allClosed(us []*Upgrade) bool {
	for _, u := range us {
		if windowEnd(u).IsZero() {
			return false
		}
	}
	return true
}

// decideL2: the apiserver's TLS connection to the kubelet, told by time
// alone: the one connection to the kubelet that began inside a window of
// trace's upgrade. When several did, the one that began last before the
// kubelet dialled the runtime for trace's session is taken, if one stands
// out by a millisecond.
func (t *tap) decideL2(c *cand, now time.Time) candState {
	m := t.s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	in, maybe := m.windows(c.first, now)
	late := now.Sub(c.first) > decideWithin
	if len(in) == 0 {
		if !maybe || late {
			return leftOut
		}
		return undecided
	}
	for _, u := range in {
		if m.l2[u.ID] != nil {
			continue
		}
		// Every connection of the window must have begun: wait until it
		// closed (or a second passed).
		if windowEnd(u).IsZero() && now.Sub(u.Sent) < time.Second && !late {
			return undecided
		}
		var rivals []*cand
		for _, o := range t.undecided {
			if o != c && o.state == undecided {
				if i, _ := u.window(o.first); i {
					rivals = append(rivals, o)
				}
			}
		}
		if len(rivals) == 0 {
			m.l2[u.ID] = c
			return ours
		}
		l3 := m.l3[u.ID]
		if l3 == nil {
			if late {
				c.ambiguous = true
				return leftOut
			}
			return undecided
		}
		all := append(rivals, c)
		sort.Slice(all, func(i, j int) bool { return all[i].first.After(all[j].first) })
		var before []*cand
		for _, o := range all {
			if !o.first.After(l3.first) {
				before = append(before, o)
			}
		}
		if len(before) > 0 && before[0] == c && (len(before) == 1 || c.first.Sub(before[1].first) >= time.Millisecond) {
			m.l2[u.ID] = c
			return ours
		}
		c.ambiguous = true
	}
	if late || !maybe && allClosed(in) {
		return leftOut
	}
	return undecided
}

// decideL4: a connection on the pod's lo (or, for the witness, its eth0)
// is trace's when it began after one of trace's data streams opened (on
// L4 within l4After of it) and carried the same first bytes as that
// stream, both ways; one that carried nothing yet is matched by time once
// it ended or half a second passed.
func (t *tap) decideL4(c *cand, now time.Time) candState {
	m := t.s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	witness := t.kind != leg.L4
	has := len(c.prefix[0])+len(c.prefix[1]) > 0
	var timed []*dataStream
	comparable := false
	for _, s := range m.streams {
		if (s.taken && !witness) || c.first.Before(s.open.Add(-2*time.Millisecond)) {
			continue
		}
		if !witness && c.first.After(s.open.Add(l4After)) {
			continue
		}
		ok, n := prefixAgree(c, s)
		if !ok {
			if n == 0 && has {
				comparable = true
			}
			continue
		}
		if has && n > 0 && (!witness || n >= 8) {
			if !witness {
				s.taken = true
			}
			return ours
		}
		timed = append(timed, s)
	}
	ended := c.closes >= 2 || c.closed()
	if !has && !witness && len(timed) > 0 && (ended || now.Sub(c.first) > 500*time.Millisecond) {
		// The stream that opened last before it.
		sort.Slice(timed, func(i, j int) bool { return timed[i].open.After(timed[j].open) })
		timed[0].taken = true
		return ours
	}
	wait := l4After
	if witness {
		wait = time.Second
	}
	if now.Sub(c.first) > wait || (has && comparable && len(timed) == 0 && now.Sub(c.first) > 100*time.Millisecond) {
		return leftOut
	}
	return undecided
}
