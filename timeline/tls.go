package timeline

import (
	"sort"
	"time"

	"github.com/pftap/pftap/decode"
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
func AddTLSLegs(hs []Hops, recs []decode.TLSRecord, shift time.Duration, bounds func(leg string) bool) []Hops {
	type key struct {
		leg  string
		conn int
		dir  decode.Dir
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
		k := key{r.Leg, r.Conn, r.Dir}
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
	claimed := map[key]map[int]bool{} // records taken by a request
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
			var lo, hi, last time.Time
			n := 0
			// The record that carries the first DATA frame is that frame
			// (8 bytes of SPDY header and the payload) plus the TLS
			// overhead: 17 bytes in TLS 1.3, 24 or 29 in TLS 1.2.
			want := map[int]bool{}
			for _, l := range d.Legs {
				if !bounds(l.Leg) {
					continue
				}
				if l.FirstChunk > 0 {
					for _, o := range []int{17, 24, 29} {
						want[l.FirstChunk+8+o] = true
					}
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
			if n < 2 {
				continue
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
				rs := byConn[k]
				taken := claimed[k]
				if taken == nil {
					taken = map[int]bool{}
					claimed[k] = taken
				}
				// The first record in the window no request took, or
				// better the first one of the first DATA frame's size.
				j := -1
				for m := sort.Search(len(rs), func(i int) bool { return !rs[i].t.Before(lo) }); m < len(rs) && !rs[m].t.After(hi); m++ {
					if taken[m] {
						continue
					}
					if j < 0 {
						j = m
					}
					if want[rs[m].len] {
						j = m
						break
					}
				}
				if j < 0 {
					continue
				}
				end := j
				for end+1 < len(rs) && !rs[end+1].t.After(last) {
					end++
				}
				taken[j] = true
				seen[k.leg] = true
				legs = append(legs, LegTimes{Leg: k.leg, Conn: k.conn, First: rs[j].t, Last: rs[end].t, FirstChunk: rs[j].len, TLS: true})
			}
			nd := orderLegs(legs)
			nd.Bytes = d.Bytes
			*d = nd
		}
		out[i] = h
	}
	return out
}
