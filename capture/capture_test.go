//go:build linux

package capture

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pftap/pftap/internal/testenv"

	"github.com/pftap/pftap/decode/packet"
	"github.com/pftap/pftap/decode/tcpstream"
)

// collect reads packets until the source has been quiet for quiet.
func collect(t testing.TB, s *Source, quiet time.Duration) (frames [][]byte) {
	t.Helper()
	last := time.Now()
	for time.Since(last) < quiet {
		data, _, err := s.ReadPacket()
		if errors.Is(err, ErrTimeout) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, append([]byte(nil), data...))
		last = time.Now()
	}
	return frames
}

// exchange runs one connection to localhost:80 inside ns: the client sends
// up bytes, the server answers down bytes, both close.
func exchange(t testing.TB, ns string, up, down []byte) {
	t.Helper()
	l := listenIn(t, ns, "127.0.0.1:80")
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		got, err := io.ReadAll(c)
		if err == nil && !bytes.Equal(got, up) {
			err = errors.New("server got other bytes")
		}
		c.Write(down)
		done <- err
	}()
	c := dialIn(t, ns, "127.0.0.1:80")
	c.Write(up)
	c.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(c)
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, down) {
		t.Fatal("client got other bytes")
	}
	l.Close()
}

type streams struct {
	data  [2][]byte
	conns int
	gaps  int
}

func (s *streams) Open(*tcpstream.Conn, time.Time)                       { s.conns++ }
func (s *streams) Packet(*tcpstream.Conn, tcpstream.Dir, *packet.Packet) {}
func (s *streams) Data(_ *tcpstream.Conn, d tcpstream.Dir, _ int64, _ time.Time, b []byte) {
	s.data[d] = append(s.data[d], b...)
}
func (s *streams) Gap(*tcpstream.Conn, tcpstream.Dir, int64, int64, time.Time)          { s.gaps++ }
func (s *streams) Close(*tcpstream.Conn, tcpstream.Dir, time.Time, tcpstream.CloseKind) {}

func reassemble(t testing.TB, frames [][]byte) *streams {
	s := &streams{}
	as := tcpstream.NewAssembler(s)
	for _, f := range frames {
		var p packet.Packet
		if err := packet.Decode(packet.LinkEthernet, f, &p); err != nil {
			t.Fatalf("captured frame does not decode: %v", err)
		}
		as.Add(&p)
	}
	as.Flush(time.Now())
	return s
}

// TestLoopbackHoldsEverythingEth0Nothing is the "why is tcpdump on eth0
// silent" fact as a test: a connection to localhost inside a pod's
// namespace crosses lo, never eth0.
func TestLoopbackHoldsEverythingEth0Nothing(t *testing.T) {
	ns := testPod(t)
	lo, err := Open(Options{Netns: ns, Interface: "lo", Filter: "tcp port 80"})
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	eth0, err := Open(Options{Netns: ns, Interface: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	defer eth0.Close()
	up, down := make([]byte, 300_000), make([]byte, 1_000_000)
	rand.Read(up)
	rand.Read(down)
	exchange(t, ns, up, down)

	s := reassemble(t, collect(t, lo, 300*time.Millisecond))
	if s.conns != 1 || s.gaps != 0 {
		t.Errorf("%d connections, %d gaps on lo", s.conns, s.gaps)
	}
	if !bytes.Equal(s.data[0], up) || !bytes.Equal(s.data[1], down) {
		t.Errorf("lo holds %d/%d bytes, want exactly %d/%d", len(s.data[0]), len(s.data[1]), len(up), len(down))
	}
	for _, f := range collect(t, eth0, 100*time.Millisecond) {
		var p packet.Packet
		if packet.Decode(packet.LinkEthernet, f, &p) == nil && (p.Src.Port() == 80 || p.Dst.Port() == 80) {
			t.Errorf("eth0 saw the connection: %v > %v", p.Src, p.Dst)
		}
	}
	if st, _ := lo.Stats(); st.Drops != 0 {
		t.Errorf("%d drops", st.Drops)
	}
}

// TestLoopbackCountMatchesTcpdump captures the same traffic with pftap and
// tcpdump: the kernel delivers lo packets twice, and both keep one.
func TestLoopbackCountMatchesTcpdump(t *testing.T) {
	ns := testPod(t)
	testenv.NeedTool(t, "tcpdump", "tcpdump")
	// tcpdump writes each packet to a pipe as it sees it; count them live,
	// so that how tcpdump is stopped cannot lose any.
	td := exec.Command("ip", "netns", "exec", ns, "tcpdump", "--immediate-mode", "-B", "65536", "-U", "-i", "lo", "-w", "-", "tcp port 80")
	var tdErr bytes.Buffer
	td.Stderr = &tdErr
	out, _ := td.StdoutPipe()
	if err := td.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { td.Process.Kill(); td.Wait() }()
	var seen atomic.Int64
	go func() {
		r, err := packet.NewReader(out)
		if err != nil {
			return
		}
		var p packet.Packet
		for r.Next(&p) == nil {
			seen.Add(1)
		}
	}()
	for !strings.Contains(tdErr.String(), "listening on") {
		time.Sleep(20 * time.Millisecond)
	}
	src, err := Open(Options{Netns: ns, Interface: "lo", Filter: "tcp port 80"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for i := 0; i < 3; i++ {
		exchange(t, ns, []byte("GET / HTTP/1.1\r\n\n"), bytes.Repeat([]byte("x"), 200_000))
	}
	ours := len(collect(t, src, 300*time.Millisecond))
	for deadline := time.Now().Add(3 * time.Second); int(seen.Load()) < ours && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	theirs := int(seen.Load())
	if ours != theirs || ours == 0 {
		t.Errorf("pftap captured %d packets on lo, tcpdump %d", ours, theirs)
	}
}

func TestFindNetnsByPodIP(t *testing.T) {
	ns := testPod(t)
	m, err := FindNetnsByIP(netip.MustParseAddr("10.251.7.2"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Ref != ns || m.Interface != "eth0" || !strings.Contains(m.How, "/run/netns/"+ns) {
		t.Errorf("found %+v, want %s eth0", m, ns)
	}
	if _, err := FindNetnsByIP(netip.MustParseAddr("10.251.99.99")); err == nil {
		t.Error("found a namespace for an address nobody has")
	}
}

func TestOpenErrors(t *testing.T) {
	needRoot(t)
	if _, err := Open(Options{Netns: "pftap-no-such-ns", Interface: "lo"}); !errors.Is(err, ErrNoNamespace) {
		t.Errorf("missing namespace: %v", err)
	}
	if _, err := Open(Options{Interface: "pftap-nope0"}); !errors.Is(err, ErrNoInterface) {
		t.Errorf("missing interface: %v", err)
	}
	if _, err := Open(Options{Interface: "lo", Filter: "port banana"}); !errors.Is(err, ErrFilter) {
		t.Errorf("bad filter: %v", err)
	}
	_ = strconv.Itoa
}
