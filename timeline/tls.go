package timeline

import (
	"sort"
	"time"

	"github.com/pftap/pftap/decode"
)

// AddTLSLegs places legs seen only as TLS records (a connection tapped on
// the wire without keys, such as the apiserver's to the kubelet from the
// node) on each request's path, by time: in each direction, the first
// application-data record that crossed while the request's bytes were
// between its first and its last plaintext leg, that no earlier request
// has claimed, gives the first-byte time; the last such record before the
// bytes left the chain, the last-byte time. With requests in flight at
// once this can pick a neighbour's record: the content cannot tell. shift
// puts the records on the hops' clock (subtracted, as ShiftLegs does).
func AddTLSLegs(hs []Hops, recs []decode.TLSRecord, shift time.Duration) []Hops {
	type key struct {
		leg  string
		conn int
		dir  decode.Dir
	}
	byConn := map[key][]time.Time{}
	for _, r := range recs {
		if r.Type != 23 { // application data
			continue
		}
		k := key{r.Leg, r.Conn, r.Dir}
		byConn[k] = append(byConn[k], r.Time.Add(-shift))
	}
	keys := make([]key, 0, len(byConn))
	for k, ts := range byConn {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].leg != keys[j].leg {
			return keys[i].leg < keys[j].leg
		}
		return keys[i].conn < keys[j].conn
	})
	claimed := map[key]int{} // records before this index are taken
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
			if len(d.Legs) < 2 {
				continue
			}
			lo, hi, last := d.Legs[0].First, d.Legs[len(d.Legs)-1].First, d.Legs[len(d.Legs)-1].Last
			legs := append([]LegTimes(nil), d.Legs...)
			seen := map[string]bool{}
			for _, l := range legs {
				seen[l.Leg] = true
			}
			for _, k := range keys {
				if k.dir != dir || seen[k.leg] {
					continue
				}
				ts := byConn[k]
				j := claimed[k]
				for j < len(ts) && ts[j].Before(lo) {
					j++
				}
				if j >= len(ts) || ts[j].After(hi) {
					continue
				}
				first := ts[j]
				end := j
				for end+1 < len(ts) && !ts[end+1].After(last) {
					end++
				}
				claimed[k] = j + 1
				seen[k.leg] = true
				legs = append(legs, LegTimes{Leg: k.leg, Conn: k.conn, First: first, Last: ts[end]})
			}
			nd := orderLegs(legs)
			nd.Bytes = d.Bytes
			*d = nd
		}
		out[i] = h
	}
	return out
}
