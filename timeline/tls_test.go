package timeline

import (
	"strings"
	"testing"
	"time"

	"github.com/pftap/pftap/decode"
)

// TestAddTLSLegs: two requests one after the other cross L1 and L3; the
// wire leg's records (on a clock 1 s ahead) land between them in each
// direction, each request taking its own records.
func TestAddTLSLegs(t *testing.T) {
	t0 := time.Unix(2000, 0)
	ms := time.Millisecond
	mk := func(base time.Time) Hops {
		return Hops{Time: base,
			ToPod: orderLegs([]LegTimes{{Leg: "L1", First: base, Last: base, Bytes: 10, FirstChunk: 10}, {Leg: "L3", First: base.Add(2 * ms), Last: base.Add(2 * ms), Bytes: 10, FirstChunk: 10}}, true),
			FromPod: orderLegs([]LegTimes{{Leg: "L3", First: base.Add(5 * ms), Last: base.Add(6 * ms), Bytes: 100},
				{Leg: "L1", First: base.Add(7 * ms), Last: base.Add(8 * ms), Bytes: 100}}, false)}
	}
	hs := []Hops{mk(t0), mk(t0.Add(time.Second))}
	skew := time.Second
	var recs []decode.TLSRecord
	for _, base := range []time.Time{t0, t0.Add(time.Second)} {
		recs = append(recs,
			// Another frame crosses first (a SYN_STREAM's size): the
			// record of the first DATA frame (10 + 8 + 17) is taken.
			decode.TLSRecord{Time: base.Add(500 * time.Microsecond).Add(skew), Leg: "wire", Conn: 3, Dir: decode.ToServer, Type: 23, Length: 60},
			decode.TLSRecord{Time: base.Add(1 * ms).Add(skew), Leg: "wire", Conn: 3, Dir: decode.ToServer, Type: 23, Length: 35},
			decode.TLSRecord{Time: base.Add(6 * ms).Add(skew), Leg: "wire", Conn: 3, Dir: decode.FromServer, Type: 23, Length: 80},
			decode.TLSRecord{Time: base.Add(6500 * time.Microsecond).Add(skew), Leg: "wire", Conn: 3, Dir: decode.FromServer, Type: 23, Length: 80},
			decode.TLSRecord{Time: base.Add(6 * ms).Add(skew), Leg: "wire", Conn: 3, Dir: decode.FromServer, Type: 21, Length: 2}) // an alert: ignored
	}
	spdy := func(l string) bool { return l == "L1" || l == "L3" }
	out := AddTLSLegs(hs, recs, skew, spdy)
	for i, h := range out {
		to, from := legNames(h.ToPod), legNames(h.FromPod)
		if to != "L1,wire,L3" || from != "L3,wire,L1" {
			t.Errorf("request %d: to pod %s, from pod %s", i, to, from)
		}
		if h.ToPod.FirstByte[0] != ms || h.FromPod.FirstByte[0] != ms || h.FromPod.LastByte[0] != 500*time.Microsecond {
			t.Errorf("request %d: hops %v / %v last %v", i, h.ToPod.FirstByte, h.FromPod.FirstByte, h.FromPod.LastByte)
		}
	}
	// No record in a request's window: the leg is left out.
	if got := legNames(AddTLSLegs(hs[:1], recs[5:], skew, spdy)[0].ToPod); got != "L1,L3" {
		t.Errorf("a record outside the window was taken: %s", got)
	}
}

func legNames(d DirHops) string {
	var s []string
	for _, l := range d.Legs {
		s = append(s, l.Leg)
	}
	return strings.Join(s, ",")
}
