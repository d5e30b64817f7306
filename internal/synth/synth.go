package synth

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	ms "github.com/moby/spdystream/spdy"

	"github.com/pftap/pftap/internal/tcpframe"
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
	c.packet(0, tcpframe.FlagSYN, nil)
	c.packet(1, tcpframe.FlagSYN|tcpframe.FlagACK, nil)
	c.packet(0, tcpframe.FlagACK, nil)
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
	c.packet(0, tcpframe.FlagFIN|tcpframe.FlagACK, nil)
	c.packet(1, tcpframe.FlagFIN|tcpframe.FlagACK, nil)
	c.packet(0, tcpframe.FlagACK, nil)
	return c.n, c.err
}

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
		c.packet(dir, tcpframe.FlagPSH|tcpframe.FlagACK, b[:k])
		b = b[k:]
		c.unack++
		if c.unack == 2 {
			c.packet(1-dir, tcpframe.FlagACK, nil)
			c.unack = 0
		}
	}
}

func (c *conn) packet(dir int, flags byte, payload []byte) {
	if c.err != nil {
		return
	}
	c.t = c.t.Add(3 * time.Microsecond)
	// The one frame builder, as the taps make their frames.
	b := tcpframe.Append(c.buf[:0], c.ep[dir], c.ep[1-dir], c.seq[dir], c.seq[1-dir], flags, payload)
	c.buf = b
	c.seq[dir] += uint32(len(payload))
	if flags&(tcpframe.FlagSYN|tcpframe.FlagFIN) != 0 {
		c.seq[dir]++
	}
	c.err = c.pw.WritePacket(gopacket.CaptureInfo{Timestamp: c.t, CaptureLength: len(b), Length: len(b)}, b)
	c.n++
}
