package tcpstream

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pftap/pftap/decode/packet"
)

type rec struct{ log []string }

func (r *rec) Open(c *Conn, t time.Time) {
	r.log = append(r.log, fmt.Sprintf("open #%d %s>%s syn=%v", c.ID, c.Client, c.Server, c.SawSYN))
}
func (r *rec) Packet(*Conn, Dir, *packet.Packet) {}
func (r *rec) Data(c *Conn, d Dir, off int64, t time.Time, b []byte) {
	r.log = append(r.log, fmt.Sprintf("data %s @%d %q", d, off, b))
}
func (r *rec) Gap(c *Conn, d Dir, off, n int64, t time.Time) {
	r.log = append(r.log, fmt.Sprintf("gap %s @%d %d", d, off, n))
}
func (r *rec) Close(c *Conn, d Dir, t time.Time, how CloseKind) {
	r.log = append(r.log, fmt.Sprintf("close %s %s", d, how))
}

var (
	cli = netip.MustParseAddrPort("10.250.0.1:40000")
	srv = netip.MustParseAddrPort("10.250.0.2:80")
)

// seg describes a packet: c (client) or s (server), relative seq, flags, data.
type seg struct {
	from  byte
	seq   uint32
	ack   uint32
	flags packet.TCPFlags
	data  string
}

const isnC, isnS = 1000, 5000

func run(segs []seg) []string {
	r := &rec{}
	as := NewAssembler(r)
	for i, s := range segs {
		p := &packet.Packet{Time: time.Unix(0, int64(i)), Flags: s.flags, Payload: []byte(s.data)}
		if s.from == 'c' {
			p.Src, p.Dst, p.Seq, p.Ack = cli, srv, isnC+s.seq, isnS+s.ack
		} else {
			p.Src, p.Dst, p.Seq, p.Ack = srv, cli, isnS+s.seq, isnC+s.ack
		}
		as.Add(p)
	}
	as.Flush(time.Unix(1, 0))
	return r.log
}

const (
	S  = packet.SYN
	A  = packet.ACK
	F  = packet.FIN | packet.ACK
	R  = packet.RST
	PA = packet.PSH | packet.ACK
)

func handshake() []seg {
	return []seg{{'c', 0, 0, S, ""}, {'s', 0, 1, S | A, ""}, {'c', 1, 1, A, ""}}
}

func TestAssembler(t *testing.T) {
	tests := []struct {
		name string
		segs []seg
		want string
	}{
		{"in order with FIN", append(handshake(),
			seg{'c', 1, 1, PA, "hello "}, seg{'c', 7, 1, PA, "world"}, seg{'s', 1, 12, PA, "ok"},
			seg{'c', 12, 3, F, ""}, seg{'s', 3, 13, F, ""}, seg{'c', 13, 4, A, ""}),
			`open #1 10.250.0.1:40000>10.250.0.2:80 syn=true|data c>s @0 "hello "|data c>s @6 "world"|data s>c @0 "ok"|close c>s FIN|close s>c FIN`},
		{"reordered", append(handshake(),
			seg{'c', 7, 1, PA, "world"}, seg{'c', 1, 1, PA, "hello "}),
			`open #1 10.250.0.1:40000>10.250.0.2:80 syn=true|data c>s @0 "hello "|data c>s @6 "world"|close c>s capture ended|close s>c capture ended`},
		{"retransmission and overlap", append(handshake(),
			seg{'c', 1, 1, PA, "hello "}, seg{'c', 1, 1, PA, "hello "}, seg{'c', 4, 1, PA, "lo world"}),
			`open #1 10.250.0.1:40000>10.250.0.2:80 syn=true|data c>s @0 "hello "|data c>s @6 "world"|close c>s capture ended|close s>c capture ended`},
		{"gap confirmed by an ACK", append(handshake(),
			seg{'c', 1, 1, PA, "hello "}, seg{'c', 12, 1, PA, "!"}, seg{'s', 1, 13, A, ""}, seg{'c', 13, 1, PA, "?"}),
			`open #1 10.250.0.1:40000>10.250.0.2:80 syn=true|data c>s @0 "hello "|gap c>s @6 5|data c>s @11 "!"|data c>s @12 "?"|close c>s capture ended|close s>c capture ended`},
		{"gap at the end of the capture", append(handshake(),
			seg{'c', 7, 1, PA, "world"}),
			`open #1 10.250.0.1:40000>10.250.0.2:80 syn=true|gap c>s @0 6|data c>s @6 "world"|close c>s capture ended|close s>c capture ended`},
		{"joined mid-connection", []seg{{'s', 100, 50, PA, "tail"}, {'c', 50, 104, PA, "more"}},
			`open #1 10.250.0.1:40000>10.250.0.2:80 syn=false|data s>c @0 "tail"|data c>s @0 "more"|close c>s capture ended|close s>c capture ended`},
		{"reset", append(handshake(), seg{'c', 1, 1, PA, "x"}, seg{'s', 1, 2, R, ""}),
			`open #1 10.250.0.1:40000>10.250.0.2:80 syn=true|data c>s @0 "x"|close c>s RST|close s>c RST`},
		{"tuple reused after close", append(append(handshake(),
			seg{'c', 1, 1, F, ""}, seg{'s', 1, 2, F, ""}, seg{'c', 2, 2, A, ""}),
			seg{'c', 100, 0, S, ""}, seg{'c', 101, 1, PA, "again"}),
			`open #1 10.250.0.1:40000>10.250.0.2:80 syn=true|close c>s FIN|close s>c FIN|open #2 10.250.0.1:40000>10.250.0.2:80 syn=true|data c>s @0 "again"|close c>s capture ended|close s>c capture ended`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(run(tt.segs), "|")
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", strings.ReplaceAll(got, "|", "\n"), strings.ReplaceAll(tt.want, "|", "\n"))
			}
		})
	}
}

func TestSequenceWraparound(t *testing.T) {
	r := &rec{}
	as := NewAssembler(r)
	isn := uint32(0xfffffffa)
	as.Add(&packet.Packet{Src: cli, Dst: srv, Seq: isn, Flags: S})
	as.Add(&packet.Packet{Src: cli, Dst: srv, Seq: isn + 1 + 5, Flags: PA, Payload: []byte("-wrapped")})
	as.Add(&packet.Packet{Src: cli, Dst: srv, Seq: isn + 1, Flags: PA, Payload: []byte("start")})
	as.Flush(time.Time{})
	got := strings.Join(r.log, "|")
	if !strings.Contains(got, `data c>s @0 "start"|data c>s @5 "-wrapped"`) {
		t.Errorf("wraparound: %s", got)
	}
}

func TestPendingBounded(t *testing.T) {
	r := &rec{}
	as := NewAssembler(r)
	as.Add(&packet.Packet{Src: cli, Dst: srv, Seq: 0, Flags: S})
	big := make([]byte, 64<<10)
	// A hole at the start, then more than MaxPendingBytes queued behind it.
	for i := 0; i < MaxPendingBytes/len(big)+2; i++ {
		as.Add(&packet.Packet{Src: cli, Dst: srv, Seq: uint32(1 + 100 + i*len(big)), Flags: PA, Payload: big})
	}
	if len(r.log) < 2 || r.log[1] != "gap c>s @0 100" {
		t.Errorf("the hole was not declared a gap when the queue overflowed: %v", r.log[:min(3, len(r.log))])
	}
}
