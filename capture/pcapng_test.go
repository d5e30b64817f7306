package capture

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pftap/pftap/internal/tcpframe"
	"github.com/pftap/pftap/internal/testenv"
	"github.com/pftap/pftap/leg"

	"github.com/pftap/pftap/decode/packet"
)

func needTshark(t *testing.T) {
	t.Helper()
	testenv.NeedTool(t, "tshark", "tshark")
}

func tshark(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("tshark", append([]string{"-n"}, args...)...).Output()
	if err != nil {
		t.Fatalf("tshark %v: %v", args, err)
	}
	return string(out)
}

// tapSession runs a real TCP exchange on 127.0.0.1 through a Tap that
// writes into a pcapng leg, and returns what each side sent.
func tapSession(t *testing.T, w *Writer, leg int, up, down []byte) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.ReadAll(c)
		c.Write(down)
		c.Close()
	}()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tap := NewTap(raw, func(ts time.Time, frame []byte) {
		if err := w.WritePacket(leg, ts, frame, len(frame), ""); err != nil {
			t.Error(err)
		}
	})
	tap.Write(up[:len(up)/3])
	tap.Write(up[len(up)/3:])
	tap.CloseWrite()
	got, _ := io.ReadAll(tap)
	tap.Close()
	if !bytes.Equal(got, down) {
		t.Fatal("client got other bytes")
	}
}

func TestTapIsReadableByTshark(t *testing.T) {
	needTshark(t)
	path := filepath.Join(t.TempDir(), "tap.pcapng")
	w, err := Create(path, "pftap test session")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteKeyLog([]byte("CLIENT_RANDOM 00 11\n")); err != nil {
		t.Fatal(err)
	}
	leg, _ := w.AddLeg(Leg{Leg: leg.Leg{Name: "L1 client-apiserver (in-process tap)", Description: "127.0.0.1 → apiserver"}})
	up, down := make([]byte, 100_000), make([]byte, 150_000) // down: more than one IPv4 packet per read
	rand.Read(up)
	rand.Read(down)
	tapSession(t, w, leg, up, down)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("recording mode %v, want 0600", st.Mode().Perm())
	}
	if flags := tshark(t, "-r", path, "-Y", "tcp.analysis.flags", "-T", "fields", "-e", "frame.number"); strings.TrimSpace(flags) != "" {
		t.Errorf("tshark's TCP analysis flags frames %s", flags)
	}
	// tshark's own reassembly of each direction equals what was sent.
	follow := tshark(t, "-r", path, "-q", "-z", "follow,tcp,raw,0")
	var c2s, s2c strings.Builder
	for _, line := range strings.Split(follow, "\n") {
		switch {
		case line == "" || strings.HasPrefix(line, "=") || strings.Contains(line, ":"):
		case strings.HasPrefix(line, "\t"):
			s2c.WriteString(strings.TrimSpace(line))
		default:
			c2s.WriteString(strings.TrimSpace(line))
		}
	}
	if c2s.String() != hex.EncodeToString(up) || s2c.String() != hex.EncodeToString(down) {
		t.Errorf("tshark reassembled %d/%d hex chars, want the exact %d/%d bytes", c2s.Len(), s2c.Len(), len(up), len(down))
	}
	if out := tshark(t, "-r", path, "-T", "fields", "-e", "frame.interface_name", "-c", "1"); strings.TrimSpace(out) != "L1 client-apiserver (in-process tap)" {
		t.Errorf("interface name %q", out)
	}
}

func TestWriterLegsCommentsAndConcurrency(t *testing.T) {
	needTshark(t)
	path := filepath.Join(t.TempDir(), "legs.pcapng")
	w, err := Create(path, "session metadata")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"L1 client-apiserver", "L3 node lo", "L4 pod lo (netns pftap-x-pod)"}
	var legs []int
	for _, n := range names {
		id, err := w.AddLeg(Leg{Leg: leg.Leg{Name: n, Description: "test leg " + n}})
		if err != nil {
			t.Fatal(err)
		}
		legs = append(legs, id)
	}
	frame := tcpframe.Append(nil, netip.MustParseAddrPort("10.250.0.1:40000"), netip.MustParseAddrPort("10.250.0.2:80"), 1, 1, tcpframe.FlagPSH|tcpframe.FlagACK, []byte("hello"))
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				w.WritePacket(legs[g], time.Unix(1700000000, int64(g*1000+i)), frame, len(frame), "comment "+strconv.Itoa(g))
			}
		}(g)
	}
	wg.Wait()
	w.Close()
	out := tshark(t, "-r", path, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.comment")
	counts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		counts[line]++
	}
	for g, n := range names {
		if c := counts[n+"\tcomment "+strconv.Itoa(g)]; c != 100 {
			t.Errorf("%s: %d packets with its comment, want 100 (%v)", n, c, counts)
		}
	}
	if out := tshark(t, "-r", path, "-T", "fields", "-e", "frame.time_epoch"); !strings.Contains(out, "1700000000.000001001\n") {
		t.Error("nanosecond timestamps are not kept")
	}
	// pftap's own reader sees the legs by name.
	f, _ := os.Open(path)
	defer f.Close()
	r, err := packet.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var p packet.Packet
	n := 0
	for r.Next(&p) == nil {
		n++
	}
	if n != 300 || len(r.Interfaces()) != 3 || r.Interfaces()[2].Name != names[2] || r.SectionComment() != "session metadata" {
		t.Errorf("read %d packets, interfaces %+v, comment %q", n, r.Interfaces(), r.SectionComment())
	}
}
