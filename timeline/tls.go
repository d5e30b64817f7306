package timeline

import (
	"sort"
	"time"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/leg"
)

// AddTLSLegs places legs seen only as TLS records (a connection tapped on
// the wire without keys, such as the apiserver's to the kubelet) on each
// request's path, by time. The TLS connection carries the port-forward
// session between two SPDY legs, so in each direction the request's bytes
// cross it after the first SPDY leg they cross and before the last:
// bounds reports the SPDY legs (Correlator.SPDYLeg). The first
// application-data record in that window that no earlier request has
// claimed gives the first-byte time; the last one before the bytes left
// the last SPDY leg, the last-byte time. With requests in flight at once
// this can pick a neighbour's record: the content cannot tell. shift puts
// the records on the hops' clock (subtracted, as ShiftLegs does).
// sizeLookahead is how many untaken records in a request's window are
// searched for the size of its first DATA frame.
const sizeLookahead = 64

func AddTLSLegs(hs []Hops, recs []decode.TLSRecord, shift time.Duration, bounds func(leg string) bool) []Hops {
	type key struct {
		leg   string
		legID leg.ID
		conn  int
		dir   decode.Dir
	}
	type rec struct {
		t   time.Time
		len int
	}
	byConn := map[key][]rec{}
	for _, r := range recs {
		if r.Type != 23 { // application data
			continue
		}
		k := key{r.Leg, r.LegID, r.Conn, r.Dir}
		byConn[k] = append(byConn[k], rec{r.Time.Add(-shift), r.Length})
	}
	keys := make([]key, 0, len(byConn))
	for k, rs := range byConn {
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].t.Before(rs[j].t) })
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].leg != keys[j].leg {
			return keys[i].leg < keys[j].leg
		}
		return keys[i].conn < keys[j].conn
	})
	// Records taken by a request, as the next record not taken from each
	// index (path-compressed): a busy connection's taken records are
	// skipped in amortised constant time.
	next := map[key][]int{}
	for k, rs := range byConn {
		n := make([]int, len(rs)+1)
		for i := range n {
			n[i] = i
		}
		next[k] = n
	}
	untaken := func(n []int, i int) int {
		r := i
		for n[r] != r {
			r = n[r]
		}
		for n[i] != r {
			n[i], i = r, n[i]
		}
		return r
	}
	order := make([]int, len(hs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return hs[order[a]].Time.Before(hs[order[b]].Time) })
	out := append([]Hops(nil), hs...)
	for _, i := range order {
		h := out[i]
		for _, toPod := range []bool{true, false} {
			d := &h.ToPod
			dir := decode.ToServer
			if !toPod {
				d, dir = &h.FromPod, decode.FromServer
			}
			// The record that carries the first DATA frame is that frame
			// (8 bytes of SPDY header and the payload) plus the TLS
			// overhead: 17 bytes in TLS 1.3, 24 or 29 in TLS 1.2.
			want := map[int]bool{}
			for _, l := range d.Legs {
				if bounds(l.Leg) && l.FirstChunk > 0 {
					for _, o := range []int{17, 24, 29} {
						want[l.FirstChunk+8+o] = true
					}
				}
			}
			// window is where a TLS leg's bytes can be: after every leg
			// before it in the chain, before every leg after it (by the
			// legs' IDs); for legs without IDs, between the first and the
			// last SPDY leg the bytes crossed.
			window := func(tlsID leg.ID) (lo, hi, last time.Time, ok bool) {
				h := tlsID.Hop()
				placed := h >= 0
				for _, l := range d.Legs {
					if l.LegID.Hop() < 0 {
						placed = false
					}
				}
				if placed {
					var haveLo, haveHi bool
					for _, l := range d.Legs {
						lh := l.LegID.Hop()
						if lh == h {
							continue
						}
						if lh < h == toPod {
							if !haveLo || l.First.After(lo) {
								lo, haveLo = l.First, true
							}
						} else {
							if !haveHi || l.First.Before(hi) {
								hi, haveHi = l.First, true
							}
							if last.IsZero() || l.Last.Before(last) {
								last = l.Last
							}
						}
					}
					return lo, hi, last, haveLo && haveHi
				}
				n := 0
				for _, l := range d.Legs {
					if !bounds(l.Leg) {
						continue
					}
					if n == 0 || l.First.Before(lo) {
						lo = l.First
					}
					if n == 0 || l.First.After(hi) {
						hi = l.First
					}
					if n == 0 || l.Last.After(last) {
						last = l.Last
					}
					n++
				}
				return lo, hi, last, n >= 2
			}
			legs := append([]LegTimes(nil), d.Legs...)
			seen := map[string]bool{}
			for _, l := range legs {
				seen[l.Leg] = true
			}
			for _, k := range keys {
				if k.dir != dir || seen[k.leg] {
					continue
				}
				lo, hi, last, ok := window(k.legID)
				if !ok {
					continue
				}
				rs, nx := byConn[k], next[k]
				// The first record in the window no request took, or
				// better the first one of the first DATA frame's size
				// among the next few not taken (many requests at once put
				// many in the window: looking further would be quadratic).
				// The same hop tapped below TLS too (the lab's L2, inside
				// the kubelet): its bytes cross the wire next to it, on
				// whichever side it was tapped, so the record nearest to it
				// (of the first DATA frame's size, if one is near) is
				// taken.
				// The end that tap sits at says on which side: inside the
				// end that sends this way, its stamp comes before the
				// bytes leave (the record is at or after it); inside the
				// end that receives, after they came (at or before it).
				// Towards the pod every connection's client sends.
				var near time.Time
				side := 0 // +1: at or after near, -1: at or before
				for _, l := range d.Legs {
					if !l.TLS && l.LegID.Hop() >= 0 && l.LegID.Hop() == k.legID.Hop() {
						near = l.First
						switch {
						case l.At == leg.Between:
						case (l.At == leg.ClientEnd) == toPod:
							side = 1
						default:
							side = -1
						}
					}
				}
				j := -1
				m := untaken(nx, sort.Search(len(rs), func(i int) bool { return !rs[i].t.Before(lo) }))
				best := time.Duration(1<<63 - 1)
				bestSized, bestSide := false, false
				for tries := 0; m < len(rs) && !rs[m].t.After(hi) && tries < sizeLookahead; tries++ {
					if near.IsZero() {
						if j < 0 {
							j = m
						}
						if want[rs[m].len] {
							j = m
							break
						}
					} else {
						dist := rs[m].t.Sub(near)
						onSide := side == 0 || side > 0 && dist >= 0 || side < 0 && dist <= 0
						if dist < 0 {
							dist = -dist
						}
						sized := want[rs[m].len] && dist < 2*time.Millisecond
						better := onSide && !bestSide ||
							onSide == bestSide && (sized && !bestSized || sized == bestSized && dist < best)
						if j < 0 || better {
							j, best, bestSized, bestSide = m, dist, sized, onSide
						}
					}
					m = untaken(nx, m+1)
				}
				if j < 0 {
					continue
				}
				end := max(j, sort.Search(len(rs), func(i int) bool { return rs[i].t.After(last) })-1)
				nx[j] = j + 1 // taken
				seen[k.leg] = true
				legs = append(legs, LegTimes{Leg: k.leg, LegID: k.legID, Conn: k.conn, First: rs[j].t, Last: rs[end].t, FirstChunk: rs[j].len, TLS: true})
			}
			nd := orderLegs(legs, toPod)
			nd.Bytes = d.Bytes
			*d = nd
		}
		out[i] = h
	}
	return out
}
