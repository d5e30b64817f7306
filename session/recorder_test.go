package session

import (
	"bytes"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pftap/pftap/internal/tcpframe"

	"github.com/pftap/pftap/capture"
	"github.com/pftap/pftap/decode/packet"
	"github.com/pftap/pftap/leg"
)

// TestRecorder: frames given leg by leg, out of time order across legs,
// are written in time order, redacted, with each leg's ID, and the end's
// metadata and drops in the statistics; Meta reads back.
func TestRecorder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.pcapng")
	f, err := capture.CreateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRecorder(f)
	legs := []capture.Leg{{Leg: leg.Leg{ID: leg.L1, Name: "one"}}, {Leg: leg.Leg{ID: leg.L4, Name: "four"}}}
	for range legs {
		r.AddLeg(false)
	}
	a, b := netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.2:6443")
	t0 := time.Now().Add(-time.Second)
	frame := func(s string) []byte {
		return tcpframe.Append(nil, a, b, 1, 1, tcpframe.FlagACK|tcpframe.FlagPSH, []byte(s))
	}
	// Leg 1's frames first, then leg 0's, which are earlier.
	r.Add(1, t0.Add(2*time.Millisecond), frame("second"), nil, 0)
	r.Add(1, t0.Add(4*time.Millisecond), frame("fourth"), nil, 0)
	r.Add(0, t0.Add(1*time.Millisecond), frame("GET / HTTP/1.1\r\nAuthorization: Bearer s3cr3t\r\n\r\n"), nil, 0)
	r.Add(0, t0.Add(3*time.Millisecond), frame("third"), nil, 0)
	if err := r.Start("a session\n"+Meta{Header: "the chain"}.Encode(), legs); err != nil {
		t.Fatal(err)
	}
	end := Meta{Results: []Result{{What: "GET /", Status: "200 OK", Bytes: 5}}, AppLog: []AppRequest{{Method: "GET", Path: "/", Bytes: 5}}}
	n, size, err := r.Finish(func(i int) uint64 { return uint64(i) * 7 }, end.Encode(), nil)
	if err != nil || n != 4 || size == 0 {
		t.Fatalf("Finish: %d packets, %d bytes, %v", n, size, err)
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), "s3cr3t") {
		t.Error("the bearer token was written")
	}
	in, _ := os.Open(path)
	defer in.Close()
	rd, err := packet.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	var p packet.Packet
	for {
		if err := rd.Next(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		order = append(order, strings.SplitN(string(p.Payload), "\r", 2)[0])
	}
	if got := strings.Join(order, ","); got != "GET / HTTP/1.1,second,third,fourth" {
		t.Errorf("written in the order %s", got)
	}
	if ifs := rd.Interfaces(); len(ifs) != 2 || ifs[0].Leg != leg.L1 || ifs[1].Leg != leg.L4 || ifs[1].Name != "four" {
		t.Errorf("interfaces %+v", ifs)
	}
	if m, ok := DecodeMeta(rd.SectionComment()); !ok || m.Header != "the chain" {
		t.Errorf("start meta %+v %v", m, ok)
	}
	st := rd.LegStats(0)
	m, ok := DecodeMeta(st.Comment)
	if !st.OK || !ok || len(m.Results) != 1 || m.Results[0].Status != "200 OK" || len(m.AppLog) != 1 {
		t.Errorf("end meta %+v %+v", st, m)
	}
	if d := rd.LegStats(1).Drops; d != 7 {
		t.Errorf("leg 1 drops %d, want 7", d)
	}
}

// TestRecorderAbandon: a session that never started leaves no file.
func TestRecorderAbandon(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.pcapng")
	f, err := capture.CreateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	NewRecorder(f).Abandon()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the file is left: %v", err)
	}
}

// TestRecorderStartFails: a Start that fails (here, a leg after the file
// is closed under it) leaves Finish returning, not waiting for a writer that
// never ran.
func TestRecorderStartFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.pcapng")
	f, err := capture.CreateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRecorder(f)
	r.AddLeg(false)
	f.Close()
	if err := r.Start("x", []capture.Leg{{Leg: leg.Leg{ID: leg.L1, Name: "one"}}}); err == nil {
		t.Fatal("Start on a closed file succeeded")
	}
	done := make(chan struct{})
	go func() { r.Finish(func(int) uint64 { return 0 }, "", nil); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Finish after a failed Start hangs")
	}
}

// TestRecorderReusesArenas: frames added by two legs' goroutines while the
// file is written come back byte for byte, with the queues' memory used
// again once written (far fewer arenas allocated than the frames fill).
func TestRecorderReusesArenas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.pcapng")
	f, err := capture.CreateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRecorder(f)
	legs := []capture.Leg{{Leg: leg.Leg{ID: leg.L3, Name: "three"}}, {Leg: leg.Leg{ID: leg.L4, Name: "four"}}}
	r.AddLeg(false)
	r.AddLeg(true)
	if err := r.Start("reuse", legs); err != nil {
		t.Fatal(err)
	}
	const frames, size = 6000, 1400
	payload := func(l, i int) []byte {
		b := make([]byte, size)
		for k := range b {
			b[k] = byte(l*7 + i + k)
		}
		return b
	}
	a, b := netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.2:80")
	t0 := time.Now().Add(-time.Minute)
	var wg sync.WaitGroup
	for l := range legs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < frames; i++ {
				ts := t0.Add(time.Duration(i*2+l) * time.Microsecond)
				if l == 0 {
					r.Add(l, ts, tcpframe.Append(nil, a, b, uint32(1+i*size), 1, tcpframe.FlagACK, payload(l, i)), nil, 0)
				} else {
					head := tcpframe.AppendHeaderNoChecksum(nil, a, b, uint32(1+i*size), 1, tcpframe.FlagACK, size)
					r.Add(l, ts, head, payload(l, i), 0)
				}
				if i%2000 == 1999 {
					time.Sleep(60 * time.Millisecond) // the writer catches up
				}
			}
		}()
	}
	wg.Wait()
	if _, _, err := r.Finish(func(int) uint64 { return 0 }, "", nil); err != nil {
		t.Fatal(err)
	}
	if need := 2 * frames * (size + 54) / arenaSize; r.arenas >= need {
		t.Errorf("%d arenas allocated for %d arenas' worth of frames: none reused", r.arenas, need)
	}
	in, _ := os.Open(path)
	defer in.Close()
	rd, err := packet.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	var p packet.Packet
	next := [2]int{}
	for {
		if err := rd.Next(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		l := p.Interface
		if !bytes.Equal(p.Payload, payload(l, next[l])) {
			t.Fatalf("leg %d frame %d: payload differs", l, next[l])
		}
		next[l]++
	}
	if next != [2]int{frames, frames} {
		t.Fatalf("read %v frames, want %d per leg", next, frames)
	}
}
