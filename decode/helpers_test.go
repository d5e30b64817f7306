package decode

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	ms "github.com/moby/spdystream/spdy"

	"github.com/pftap/pftap/decode/packet"
)

// conv builds the packets of one TCP connection from what each side sends.
type conv struct {
	cli, srv netip.AddrPort
	seq      [2]uint32
	t        time.Time
	pkts     []packet.Packet
}

func newConv(port uint16) *conv {
	c := &conv{cli: netip.MustParseAddrPort("10.250.0.1:50000"), srv: netip.AddrPortFrom(netip.MustParseAddr("10.250.0.2"), port),
		seq: [2]uint32{100, 900}, t: time.Unix(1700000000, 0)}
	c.add(0, packet.SYN, nil)
	c.add(1, packet.SYN|packet.ACK, nil)
	return c
}

func (c *conv) add(dir int, flags packet.TCPFlags, b []byte) {
	c.t = c.t.Add(time.Millisecond)
	p := packet.Packet{Time: c.t, Flags: flags, Payload: append([]byte(nil), b...), Seq: c.seq[dir], Ack: c.seq[1-dir]}
	if dir == 0 {
		p.Src, p.Dst = c.cli, c.srv
	} else {
		p.Src, p.Dst = c.srv, c.cli
	}
	c.seq[dir] += uint32(len(b))
	if flags&(packet.SYN|packet.FIN) != 0 {
		c.seq[dir]++
	}
	c.pkts = append(c.pkts, p)
}

// send adds b from dir (0 client, 1 server) in segments of at most seg bytes.
func (c *conv) send(dir int, b []byte, seg int) {
	for len(b) > 0 {
		n := min(seg, len(b))
		c.add(dir, packet.PSH|packet.ACK, b[:n])
		b = b[n:]
	}
}

func (c *conv) fin() {
	c.add(0, packet.FIN|packet.ACK, nil)
	c.add(1, packet.FIN|packet.ACK, nil)
}

func decodeConv(t *testing.T, opts Options, c *conv) ([]*Event, Summary) {
	t.Helper()
	var evs []*Event
	d := NewDecoder(opts, func(e *Event) { evs = append(evs, e) })
	for i := range c.pkts {
		d.Add(&c.pkts[i])
	}
	return evs, d.Finish()
}

func texts(evs []*Event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(string(e.Dir))
		b.WriteByte(' ')
		b.WriteString(e.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

// spdyWriter encodes frames for one direction with moby/spdystream.
type spdyWriter struct {
	buf bytes.Buffer
	fr  *ms.Framer
}

func newSPDYWriter() *spdyWriter {
	w := &spdyWriter{}
	w.fr, _ = ms.NewFramer(&w.buf, nil)
	return w
}

func (w *spdyWriter) frame(f ms.Frame) []byte {
	w.buf.Reset()
	if err := w.fr.WriteFrame(f); err != nil {
		panic(err)
	}
	return append([]byte(nil), w.buf.Bytes()...)
}

func synStream(id uint32, typ, port, reqID string, fin bool) *ms.SynStreamFrame {
	h := http.Header{"Streamtype": {typ}, "Port": {port}}
	if reqID != "" {
		h["Requestid"] = []string{reqID}
	}
	f := &ms.SynStreamFrame{StreamId: ms.StreamId(id), Headers: h}
	if fin {
		f.CFHeader.Flags = ms.ControlFlagFin
	}
	return f
}

func wsFrame(op byte, payload []byte, mask bool) []byte {
	b := []byte{0x80 | op}
	m := byte(0)
	if mask {
		m = 0x80
	}
	switch {
	case len(payload) < 126:
		b = append(b, m|byte(len(payload)))
	case len(payload) < 1<<16:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(len(payload)))
	}
	if mask {
		key := []byte{0x11, 0x22, 0x33, 0x44}
		b = append(b, key...)
		for i, c := range payload {
			b = append(b, c^key[i%4])
		}
		return b
	}
	return append(b, payload...)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
