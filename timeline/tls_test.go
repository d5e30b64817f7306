package timeline

import (
	"strings"
	"testing"
	"time"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/leg"
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

// TestAddTLSLegsBySide: the same hop tapped below TLS inside one of its
// ends (the lab's kubelet, the server) places the wire's record on the
// causal side of that tap: the kubelet's writes are stamped before they
// leave (the record after), its reads after they came (the record
// before), even when a record on the other side is nearer. Not said
// where (a capture of someone's), the nearest is taken.
func TestAddTLSLegsBySide(t *testing.T) {
	t0 := time.Unix(3000, 0)
	us := time.Microsecond
	l := func(id leg.ID, at leg.End, first time.Duration) LegTimes {
		return LegTimes{Leg: string(id), LegID: id, At: at, First: t0.Add(first), Last: t0.Add(first), Bytes: 10, FirstChunk: 4096}
	}
	for _, at := range []leg.End{leg.ServerEnd, leg.ClientEnd, leg.Between} {
		h := Hops{Time: t0,
			ToPod:   orderLegs([]LegTimes{l(leg.L1, leg.Between, 0), l(leg.L2, at, 500*us), l(leg.L3, leg.Between, 900*us)}, true),
			FromPod: orderLegs([]LegTimes{l(leg.L3, leg.Between, 2000*us), l(leg.L2, at, 2500*us), l(leg.L1, leg.Between, 2900*us)}, false)}
		rec := func(d decode.Dir, at time.Duration) decode.TLSRecord {
			return decode.TLSRecord{Time: t0.Add(at), Leg: "wire", LegID: leg.L2Wire, Conn: 3, Dir: d, Type: 23, Length: 100}
		}
		// Each way, a record 10µs before the plaintext's stamp and one
		// 30µs after it.
		recs := []decode.TLSRecord{rec(decode.ToServer, 490*us), rec(decode.ToServer, 530*us),
			rec(decode.FromServer, 2490*us), rec(decode.FromServer, 2530*us)}
		out := AddTLSLegs([]Hops{h}, recs, 0, func(string) bool { return true })[0]
		to, from := legNames(out.ToPod), legNames(out.FromPod)
		want := map[leg.End][2]string{
			leg.ServerEnd: {"L1,wire,L2,L3", "L3,L2,wire,L1"}, // the kubelet reads, then writes
			leg.ClientEnd: {"L1,L2,wire,L3", "L3,wire,L2,L1"}, // the apiserver writes, then reads
			leg.Between:   {"L1,wire,L2,L3", "L3,wire,L2,L1"}, // the nearer record
		}[at]
		if to != want[0] || from != want[1] {
			t.Errorf("plaintext tapped at %q: to the pod %s, from it %s; want %s, %s", at, to, from, want[0], want[1])
		}
		for _, d := range []DirHops{out.ToPod, out.FromPod} {
			for _, f := range d.FirstByte {
				if f < 0 {
					t.Errorf("at %q: a negative hop %v", at, d.FirstByte)
				}
			}
		}
	}
}
