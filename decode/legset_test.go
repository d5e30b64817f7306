package decode

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pftap/pftap/leg"

	"github.com/pftap/pftap/decode/packet"
)

// readMerged reads every packet of a recording, with copies of their
// payloads, merged by time as a live session merges its legs: the packet
// with the earliest time first, between equal times the lower interface,
// and each interface's packets in file order.
func readMerged(t *testing.T, path string) ([]packet.Packet, []packet.Interface) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := packet.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	all, ifs, err := rd.ReadAll()
	if err != nil {
		t.Logf("%s: %v (decoding what came before)", path, err)
	}
	var byLeg [][]packet.Packet
	for _, p := range all {
		for len(byLeg) <= p.Interface {
			byLeg = append(byLeg, nil)
		}
		byLeg[p.Interface] = append(byLeg[p.Interface], p)
	}
	var out []packet.Packet
	for {
		best := -1
		for i, ps := range byLeg {
			if len(ps) > 0 && (best < 0 || ps[0].Time.Before(byLeg[best][0].Time)) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		out = append(out, byLeg[best][0])
		byLeg[best] = byLeg[best][1:]
	}
	for len(ifs) < len(byLeg) {
		ifs = append(ifs, packet.Interface{Index: len(ifs)})
	}
	return out, ifs
}

type chunkRec struct {
	Leg       string
	Conn      int
	Dir       Dir
	Stream    uint32
	RequestID string
	SPDY      bool
	Offset    int64
	Len       int
	CRC       uint32
}

type decoded struct {
	events  []string
	sum     Summary
	chunks  []chunkRec
	records []TLSRecord
}

func decodeOne(pkts []packet.Packet, ifs []packet.Interface, verbosity int) decoded {
	var out decoded
	d := NewDecoder(Options{Verbosity: verbosity,
		Chunks: func(c *Chunk) {
			out.chunks = append(out.chunks, chunkRec{c.Leg, c.Conn, c.Dir, c.Stream, c.RequestID, c.SPDY, c.Offset, c.Len, crc32.ChecksumIEEE(c.Data)})
		},
		Records: func(r *TLSRecord) { out.records = append(out.records, *r) }},
		func(e *Event) { b, _ := json.Marshal(e); out.events = append(out.events, string(b)) })
	d.SetInterfaces(ifs)
	for i := range pkts {
		d.Add(&pkts[i])
	}
	out.sum = d.Finish()
	return out
}

// decodeLegs decodes the same packets with a LegSet, each leg fed by a
// goroutine of its own, releasing events behind the slowest leg as a live
// session does.
func decodeLegs(pkts []packet.Packet, ifs []packet.Interface, verbosity int) decoded {
	var out decoded
	s := NewLegSet(Options{Verbosity: verbosity}, func(e *Event) { b, _ := json.Marshal(e); out.events = append(out.events, string(b)) })
	chunks := make([][]chunkRec, len(ifs))
	records := make([][]TLSRecord, len(ifs))
	legs := make([]*LegDecoder, len(ifs))
	for i, ifc := range ifs {
		i := i
		legs[i] = s.AddLeg(leg.Leg{ID: ifc.Leg, Name: ifc.Name}, func(c *Chunk) {
			chunks[i] = append(chunks[i], chunkRec{c.Leg, c.Conn, c.Dir, c.Stream, c.RequestID, c.SPDY, c.Offset, c.Len, crc32.ChecksumIEEE(c.Data)})
		}, func(r *TLSRecord) { records[i] = append(records[i], *r) })
	}
	// Feed the legs concurrently, in rounds: every leg gets its packets up
	// to a point in time, then events before it are released.
	step := 5 * time.Millisecond
	var until time.Time
	if len(pkts) > 0 {
		until = pkts[0].Time
	}
	next := make([]int, len(ifs))
	byLeg := make([][]*packet.Packet, len(ifs))
	for i := range pkts {
		byLeg[pkts[i].Interface] = append(byLeg[pkts[i].Interface], &pkts[i])
	}
	for {
		until = until.Add(step)
		var wg sync.WaitGroup
		left := false
		for i := range legs {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				for next[i] < len(byLeg[i]) && byLeg[i][next[i]].Time.Before(until) {
					legs[i].Add(byLeg[i][next[i]])
					next[i]++
				}
			}(i)
		}
		wg.Wait()
		for i := range legs {
			left = left || next[i] < len(byLeg[i])
		}
		s.Release(until)
		if !left {
			break
		}
	}
	out.sum = s.Finish()
	// The legs' own connection numbers, made the set's, in merged order.
	for i := range ifs {
		for k := range chunks[i] {
			chunks[i][k].Conn = s.Conn(i, chunks[i][k].Conn)
		}
		for k := range records[i] {
			records[i][k].Conn = s.Conn(i, records[i][k].Conn)
		}
		out.chunks = append(out.chunks, chunks[i]...)
		out.records = append(out.records, records[i]...)
	}
	return out
}

func TestLegSetDecodesAsOneDecoder(t *testing.T) {
	var files []string
	for _, dir := range []string{"../testdata/recordings", "../testdata/replay"} {
		m, _ := filepath.Glob(filepath.Join(dir, "*.pcapng"))
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no recordings")
	}
	for _, path := range files {
		pkts, ifs := readMerged(t, path)
		for _, v := range []int{0, 2} {
			t.Run(fmt.Sprintf("%s/v%d", filepath.Base(path), v), func(t *testing.T) {
				want, got := decodeOne(pkts, ifs, v), decodeLegs(pkts, ifs, v)
				if len(want.events) < 5 {
					t.Fatalf("only %d events: not a useful recording", len(want.events))
				}
				for i := 0; i < max(len(want.events), len(got.events)); i++ {
					var w, g string
					if i < len(want.events) {
						w = want.events[i]
					}
					if i < len(got.events) {
						g = got.events[i]
					}
					if w != g {
						t.Fatalf("event %d of %d/%d differs:\n one decoder: %s\n leg set:     %s", i, len(want.events), len(got.events), w, g)
					}
				}
				if !reflect.DeepEqual(want.sum, got.sum) {
					wb, _ := json.Marshal(want.sum)
					gb, _ := json.Marshal(got.sum)
					t.Errorf("summary differs:\n one decoder: %s\n leg set:     %s", wb, gb)
				}
				// Chunks and records are per leg: compare them per leg, in order.
				byLeg := func(cs []chunkRec) []chunkRec {
					s := append([]chunkRec(nil), cs...)
					sort.SliceStable(s, func(i, j int) bool { return s[i].Leg < s[j].Leg })
					return s
				}
				if w, g := byLeg(want.chunks), byLeg(got.chunks); !reflect.DeepEqual(w, g) {
					t.Errorf("chunks differ: %d against %d", len(w), len(g))
				}
				recs := func(rs []TLSRecord) []TLSRecord {
					s := append([]TLSRecord(nil), rs...)
					sort.SliceStable(s, func(i, j int) bool { return s[i].Leg < s[j].Leg })
					return s
				}
				if w, g := recs(want.records), recs(got.records); !reflect.DeepEqual(w, g) {
					t.Errorf("TLS records differ: %d against %d", len(w), len(g))
				}
			})
		}
	}
}

// TestLegSetTies: packets of two legs at the very same times, the legs fed
// in the reverse order: between equal times the leg added first goes
// first, for events and for connection numbers, as in one Decoder fed the
// merged packets.
func TestLegSetTies(t *testing.T) {
	build := func(path string) *conv {
		c := newConv(80)
		c.add(0, packet.ACK, nil)
		c.send(0, []byte("GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"), 1448)
		c.send(1, []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 1448)
		c.fin()
		return c
	}
	a, b := build("/a"), build("/b")
	for i := range b.pkts {
		b.pkts[i].Interface = 1
	}
	var merged []packet.Packet
	for i := range a.pkts {
		merged = append(merged, a.pkts[i], b.pkts[i])
	}
	ifs := []packet.Interface{{Index: 0, Name: "a"}, {Index: 1, Name: "b"}}
	want := decodeOne(merged, ifs, 0)

	var got []string
	s := NewLegSet(Options{}, func(e *Event) { bs, _ := json.Marshal(e); got = append(got, string(bs)) })
	la, lb := s.AddLeg(leg.Leg{Name: "a"}, nil, nil), s.AddLeg(leg.Leg{Name: "b"}, nil, nil)
	for i := range b.pkts {
		lb.Add(&b.pkts[i])
	}
	for i := range a.pkts {
		la.Add(&a.pkts[i])
	}
	s.Finish()
	if strings.Join(got, "\n") != strings.Join(want.events, "\n") {
		t.Errorf("leg set:\n%s\none decoder:\n%s", strings.Join(got, "\n"), strings.Join(want.events, "\n"))
	}
	if len(got) < 6 || !strings.Contains(got[0], `"leg":"a"`) || !strings.Contains(got[0], `"conn":1`) {
		t.Errorf("the first event is not leg a's connection 1: %v", got)
	}
}
