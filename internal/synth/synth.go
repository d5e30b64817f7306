package synth

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	ms "github.com/moby/spdystream/spdy"
)

// Config says what to write.
type Config struct {
	// Bytes is how much the pod sends on the data stream.
	Bytes int64
	// MSS is the TCP payload per segment; default 1448.
	MSS int
	// Requests is how many port-forward requests share the transfer, one
	// after another on one connection; default 1.
	Requests int
}

// Write writes the capture as pcap (Ethernet) to w and returns the packet
// count.
func Write(w io.Writer, cfg Config) (int, error) {
	if cfg.MSS == 0 {
		cfg.MSS = 1448
	}
	if cfg.Requests == 0 {
		cfg.Requests = 1
	}
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		return 0, err
	}
	c := &conn{pw: pw, mss: cfg.MSS, t: time.Unix(1764000000, 0),
		ep:  [2]netip.AddrPort{netip.MustParseAddrPort("10.250.0.1:51000"), netip.MustParseAddrPort("10.250.1.1:6443")},
		seq: [2]uint32{1000, 2000000}}
	c.packet(0, flagSYN, nil)
	c.packet(1, flagSYN|flagACK, nil)
	c.packet(0, flagACK, nil)
	c.send(0, []byte("POST /api/v1/namespaces/default/pods/nginx/portforward HTTP/1.1\r\nHost: 10.250.1.1:6443\r\n"+
		"Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n\r\n"))
	c.send(1, []byte("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n"))
	var cb, sb bytes.Buffer
	cf, _ := ms.NewFramer(&cb, nil)
	sf, _ := ms.NewFramer(&sb, nil)
	frame := func(dir int, f ms.Frame) {
		buf, fr := &cb, cf
		if dir == 1 {
			buf, fr = &sb, sf
		}
		buf.Reset()
		if err := fr.WriteFrame(f); err != nil {
			panic(err)
		}
		c.send(dir, buf.Bytes())
	}
	payload := make([]byte, 32<<10)
	for i := range payload {
		payload[i] = byte(i%251) + 1
	}
	per := cfg.Bytes / int64(cfg.Requests)
	for r := 0; r < cfg.Requests; r++ {
		id := fmt.Sprint(r)
		errID, dataID := ms.StreamId(4*r+1), ms.StreamId(4*r+3)
		frame(0, &ms.SynStreamFrame{StreamId: errID, CFHeader: ms.ControlFrameHeader{Flags: ms.ControlFlagFin},
			Headers: http.Header{"Streamtype": {"error"}, "Port": {"80"}, "Requestid": {id}}})
		frame(1, &ms.SynReplyFrame{StreamId: errID})
		frame(0, &ms.SynStreamFrame{StreamId: dataID, Headers: http.Header{"Streamtype": {"data"}, "Port": {"80"}, "Requestid": {id}}})
		frame(1, &ms.SynReplyFrame{StreamId: dataID})
		frame(0, &ms.DataFrame{StreamId: dataID, Data: []byte("GET /bytes HTTP/1.1\r\nHost: localhost\r\n\r\n")})
		for left := per; left > 0; {
			n := min(left, int64(len(payload)))
			frame(1, &ms.DataFrame{StreamId: dataID, Data: payload[:n]})
			left -= n
		}
		frame(1, &ms.DataFrame{StreamId: dataID, Flags: ms.DataFlagFin})
		frame(0, &ms.DataFrame{StreamId: dataID, Flags: ms.DataFlagFin})
		frame(1, &ms.DataFrame{StreamId: errID, Flags: ms.DataFlagFin})
	}
	c.packet(0, flagFIN|flagACK, nil)
	c.packet(1, flagFIN|flagACK, nil)
	c.packet(0, flagACK, nil)
	return c.n, c.err
}

const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagPSH = 0x08
	flagACK = 0x10
)

type conn struct {
	pw    *pcapgo.Writer
	mss   int
	t     time.Time
	ep    [2]netip.AddrPort
	seq   [2]uint32
	unack int
	n     int
	err   error
	buf   []byte
}

// send cuts b into segments; the receiver ACKs every second one.
func (c *conn) send(dir int, b []byte) {
	for len(b) > 0 {
		k := min(c.mss, len(b))
		c.packet(dir, flagPSH|flagACK, b[:k])
		b = b[k:]
		c.unack++
		if c.unack == 2 {
			c.packet(1-dir, flagACK, nil)
			c.unack = 0
		}
	}
}

func (c *conn) packet(dir int, flags byte, payload []byte) {
	if c.err != nil {
		return
	}
	c.t = c.t.Add(3 * time.Microsecond)
	src, dst := c.ep[dir], c.ep[1-dir]
	b := c.buf[:0]
	// Ethernet
	b = append(b, 0x02, 0, 0, 0, 0, byte(2-dir), 0x02, 0, 0, 0, 0, byte(1+dir), 0x08, 0x00)
	// IPv4
	total := 20 + 20 + len(payload)
	ip := []byte{0x45, 0, byte(total >> 8), byte(total), 0, 0, 0x40, 0, 64, 6, 0, 0}
	ip = append(ip, src.Addr().AsSlice()...)
	ip = append(ip, dst.Addr().AsSlice()...)
	binary.BigEndian.PutUint16(ip[10:], checksum(ip))
	b = append(b, ip...)
	// TCP
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	b = binary.BigEndian.AppendUint32(b, c.seq[dir])
	b = binary.BigEndian.AppendUint32(b, c.seq[1-dir])
	b = append(b, 5<<4, flags, 0xff, 0xff, 0, 0, 0, 0)
	b = append(b, payload...)
	c.buf = b
	c.seq[dir] += uint32(len(payload))
	if flags&(flagSYN|flagFIN) != 0 {
		c.seq[dir]++
	}
	c.err = c.pw.WritePacket(gopacket.CaptureInfo{Timestamp: c.t, CaptureLength: len(b), Length: len(b)}, b)
	c.n++
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
