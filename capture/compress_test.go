package capture

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pftap/pftap/decode/packet"
	"github.com/pftap/pftap/internal/tcpframe"
	"github.com/pftap/pftap/leg"
)

// TestCompressedRecording: a recording named .zst or .gz is compressed as
// it is written and read back whole; one cut off after a Sync (its writer
// killed) is read up to there. Plain and compressed, a writer that
// gathers its writes (Gather) writes nothing before a Sync and, when what
// it holds fills up, only whole blocks; one that does not writes each
// packet as it comes.
func TestCompressedRecording(t *testing.T) {
	src, dst := netip.MustParseAddrPort("10.250.0.1:40000"), netip.MustParseAddrPort("10.250.0.2:80")
	for _, ext := range []string{".pcapng", ".pcapng.zst", ".pcapng.gz"} {
		for _, gather := range []bool{false, true} {
			name := ext
			if gather {
				name += "/gathered"
			}
			t.Run(name, func(t *testing.T) { testRecording(t, ext, gather, src, dst) })
		}
	}
}

func testRecording(t *testing.T, ext string, gather bool, src, dst netip.AddrPort) {
	path := filepath.Join(t.TempDir(), "r"+ext)
	f, err := CreateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	w := NewFileWriter(f, "a compressed session")
	if gather {
		w.Gather()
	}
	if _, err := w.AddLeg(Leg{Leg: leg.Leg{ID: leg.L4, Name: "L4 runtime→app"}}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1700000000, 0)
	payload := make([]byte, 1000)
	for i := range 100 {
		fr := tcpframe.Append(nil, src, dst, uint32(1+i*1000), 1, tcpframe.FlagACK|tcpframe.FlagPSH, payload)
		if err := w.WritePacket(0, t0.Add(time.Duration(i)*time.Millisecond), fr, len(fr), ""); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := os.Stat(path)
	switch {
	case gather && st.Size() != 0:
		t.Errorf("gathering: %d bytes in the file before a Sync", st.Size())
	case !gather && ext == ".pcapng" && st.Size() < 100*1000:
		t.Errorf("not gathering: %d bytes in the file after 100 packets", st.Size())
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	// As a killed run leaves it: what was synced, no end.
	cut, _ := os.ReadFile(path)
	more := 50
	if gather && ext == ".pcapng" {
		more = 2*gatherSize/1000 + 50
	}
	for range more {
		fr := tcpframe.Append(nil, src, dst, 1, 1, tcpframe.FlagACK, payload)
		w.WritePacket(0, t0, fr, len(fr), "")
	}
	// Past what a gathering writer holds, unsynced: whole blocks.
	mid, _ := os.ReadFile(path)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	full, _ := os.ReadFile(path)
	if ext != ".pcapng" && len(full) > 150*1100/4 {
		t.Errorf("%d bytes for 150 packets of one repeated pattern: not compressed", len(full))
	}
	count := func(b []byte) (int, error) {
		p := filepath.Join(t.TempDir(), "x"+ext)
		os.WriteFile(p, b, 0o600)
		fh, _ := os.Open(p)
		defer fh.Close()
		rd, err := packet.NewReader(fh)
		if err != nil {
			return 0, err
		}
		var pk packet.Packet
		n := 0
		for {
			if err := rd.Next(&pk); err != nil {
				if err.Error() == "EOF" {
					return n, nil
				}
				return n, err
			}
			n++
		}
	}
	if n, err := count(full); n != 100+more || err != nil {
		t.Errorf("the whole file: %d packets, %v; want %d", n, err, 100+more)
	}
	if n, _ := count(cut); n != 100 {
		t.Errorf("the file cut after a sync: %d packets, want the 100 written before it", n)
	}
	if gather && ext == ".pcapng" {
		n, err := count(mid)
		if err != nil || n <= 100 || n >= 100+more {
			t.Errorf("a gathering writer past %d bytes, unsynced: %d packets of %d in the file (%v); want some, in whole blocks", gatherSize, n, 100+more, err)
		}
	}
}
