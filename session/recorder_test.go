package session

import (
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
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
	legs := []capture.Leg{{ID: leg.L1, Name: "one"}, {ID: leg.L4, Name: "four"}}
	for range legs {
		r.AddLeg()
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
	if err := r.Start("a session\n"+Meta{Header: "the chain"}.Encode(), legs, nil); err != nil {
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
	r.AddLeg()
	f.Close()
	if err := r.Start("x", []capture.Leg{{ID: leg.L1, Name: "one"}}, nil); err == nil {
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
