package packet

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

func ipv4TCP(payload string) []byte {
	tcp := []byte{0x9c, 0x40, 0x00, 0x50, 0, 0, 0x03, 0xe8, 0, 0, 0x07, 0xd0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0}
	total := 20 + len(tcp) + len(payload)
	ip := []byte{0x45, 0, byte(total >> 8), byte(total), 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 250, 0, 1, 10, 250, 0, 2}
	return append(append(ip, tcp...), payload...)
}

func ipv6TCP(payload string) []byte {
	tcp := []byte{0x9c, 0x40, 0x00, 0x50, 0, 0, 0x03, 0xe8, 0, 0, 0x07, 0xd0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0}
	// One hop-by-hop extension header before TCP.
	ext := []byte{6, 0, 0, 0, 0, 0, 0, 0}
	plen := len(ext) + len(tcp) + len(payload)
	ip := []byte{0x60, 0, 0, 0, byte(plen >> 8), byte(plen), 0, 64}
	ip = append(ip, make([]byte, 15)...)
	ip = append(ip, 1) // ::1
	ip = append(ip, make([]byte, 15)...)
	ip = append(ip, 2) // ::2
	return append(append(append(ip, ext...), tcp...), payload...)
}

func TestDecodeLinkTypes(t *testing.T) {
	eth := []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}
	vlan := []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0x00, 0, 7, 0x08, 0x00}
	sll := make([]byte, 16)
	binary.BigEndian.PutUint16(sll[14:], 0x0800)
	sll2 := make([]byte, 20)
	binary.BigEndian.PutUint16(sll2[0:], 0x86dd)
	null := []byte{2, 0, 0, 0}
	loop := []byte{0, 0, 0, 2}
	tests := []struct {
		name string
		lt   LinkType
		b    []byte
		src  string
	}{
		{"ethernet", LinkEthernet, append(eth, ipv4TCP("hello")...), "10.250.0.1:40000"},
		{"ethernet 802.1Q", LinkEthernet, append(vlan, ipv4TCP("hello")...), "10.250.0.1:40000"},
		{"linux cooked", LinkSLL, append(sll, ipv4TCP("hello")...), "10.250.0.1:40000"},
		{"linux cooked v2, IPv6", LinkSLL2, append(sll2, ipv6TCP("hello")...), "[::1]:40000"},
		{"raw", LinkRaw, ipv4TCP("hello"), "10.250.0.1:40000"},
		{"raw IPv6", LinkIPv6, ipv6TCP("hello"), "[::1]:40000"},
		{"BSD loopback", LinkNull, append(null, ipv4TCP("hello")...), "10.250.0.1:40000"},
		{"OpenBSD loopback", LinkLoop, append(loop, ipv4TCP("hello")...), "10.250.0.1:40000"},
		{"ethernet padding", LinkEthernet, append(append(eth, ipv4TCP("hello")...), 0, 0, 0), "10.250.0.1:40000"},
	}
	for _, tt := range tests {
		var p Packet
		if err := Decode(tt.lt, tt.b, &p); err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if p.Src.String() != tt.src || p.Dst.Port() != 80 || string(p.Payload) != "hello" || p.Seq != 1000 || p.Ack != 2000 || p.Flags != PSH|ACK {
			t.Errorf("%s: got %+v payload %q", tt.name, p, p.Payload)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	var p Packet
	udp := ipv4TCP("")
	udp[9] = 17
	short := ipv4TCP("hello")[:30]
	trunc := ipv4TCP("hello")[:42]
	for name, tc := range map[string]struct {
		lt   LinkType
		b    []byte
		want error
	}{
		"udp":          {LinkRaw, udp, ErrNotTCP},
		"cut header":   {LinkRaw, short, ErrMalformed},
		"unknown link": {LinkType(999), ipv4TCP("x"), ErrUnsupportedLink},
		"arp":          {LinkEthernet, append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x06}, make([]byte, 28)...), ErrNotTCP},
	} {
		if err := Decode(tc.lt, tc.b, &p); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// A snap length that cut the payload: the packet decodes, and says so.
	if err := Decode(LinkRaw, trunc, &p); err != nil || string(p.Payload) != "he" || p.Missing != 3 {
		t.Errorf("truncated: %v %q missing %d", err, p.Payload, p.Missing)
	}
}

func TestReaderPcapAndPcapng(t *testing.T) {
	frame := append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}, ipv4TCP("hi")...)
	ts := time.Unix(1700000000, 123456789)
	var pc, ng bytes.Buffer
	w := pcapgo.NewWriterNanos(&pc)
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(frame), Length: len(frame)}, frame)
	nw, err := pcapgo.NewNgWriterInterface(&ng, pcapgo.NgInterface{Name: "L4 pod lo", LinkType: layers.LinkTypeEthernet, TimestampResolution: 9}, pcapgo.NgWriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nw.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(frame), Length: len(frame)}, frame)
	nw.Flush()
	for name, b := range map[string][]byte{"pcap": pc.Bytes(), "pcapng": ng.Bytes()} {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var p Packet
		if err := r.Next(&p); err != nil || string(p.Payload) != "hi" || !p.Time.Equal(ts) {
			t.Errorf("%s: %v %q %v", name, err, p.Payload, p.Time)
		}
		if name == "pcapng" && r.Interfaces()[0].Name != "L4 pod lo" {
			t.Errorf("interface name %q", r.Interfaces()[0].Name)
		}
		if err := r.Next(&p); err.Error() != "EOF" {
			t.Errorf("%s: after the last packet: %v", name, err)
		}
	}
}

// TestReadAll reads every packet with a payload of its own, and on a file
// cut short gives what came before the cut with an ErrBadCapture.
func TestReadAll(t *testing.T) {
	var ng bytes.Buffer
	nw, err := pcapgo.NewNgWriterInterface(&ng, pcapgo.NgInterface{Name: "L4 pod lo", LinkType: layers.LinkTypeEthernet, TimestampResolution: 9}, pcapgo.NgWriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 0)
	for _, s := range []string{"one", "two", "three"} {
		frame := append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}, ipv4TCP(s)...)
		nw.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(frame), Length: len(frame)}, frame)
	}
	nw.Flush()
	r, err := NewReader(bytes.NewReader(ng.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	pkts, ifs, err := r.ReadAll()
	if err != nil || len(pkts) != 3 || len(ifs) != 1 {
		t.Fatalf("%d packets, %d interfaces, %v", len(pkts), len(ifs), err)
	}
	for i, want := range []string{"one", "two", "three"} {
		if string(pkts[i].Payload) != want {
			t.Errorf("packet %d: %q, want %q (payloads must not share the reader's buffer)", i, pkts[i].Payload, want)
		}
	}
	r, err = NewReader(bytes.NewReader(ng.Bytes()[:ng.Len()-10]))
	if err != nil {
		t.Fatal(err)
	}
	pkts, _, err = r.ReadAll()
	if !errors.Is(err, ErrBadCapture) || len(pkts) != 2 {
		t.Errorf("cut short: %d packets, %v; want 2 and ErrBadCapture", len(pkts), err)
	}
}

// TestManyInterfacesBounded: a file of nothing but interface blocks is
// refused past MaxInterfaces, whatever its size, instead of costing a
// reader memory for each.
func TestManyInterfacesBounded(t *testing.T) {
	le := binary.LittleEndian
	var b []byte
	shb := le.AppendUint32(le.AppendUint32(nil, 0x0a0d0d0a), 28)
	shb = le.AppendUint32(shb, 0x1a2b3c4d)
	shb = le.AppendUint16(le.AppendUint16(shb, 1), 0)
	shb = le.AppendUint64(shb, ^uint64(0))
	b = append(b, le.AppendUint32(shb, 28)...)
	idb := le.AppendUint32(le.AppendUint32(nil, 1), 20)
	idb = le.AppendUint32(le.AppendUint16(le.AppendUint16(idb, 1), 0), 65535)
	idb = le.AppendUint32(idb, 20)
	for range MaxInterfaces {
		b = append(b, idb...)
	}
	rd, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var p Packet
	if err := rd.Next(&p); err != io.EOF {
		t.Fatalf("%d interfaces: %v, want EOF", MaxInterfaces, err)
	}
	b = append(b, idb...)
	rd, err = NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := rd.Next(&p); !errors.Is(err, ErrBadCapture) || !strings.Contains(err.Error(), "more than 4096 interfaces") || strings.Count(err.Error(), "bad capture") != 1 {
		t.Errorf("%d interfaces: %v", MaxInterfaces+1, err)
	}
}

// TestCompressedGarbage: garbage behind a gzip or zstd magic, and a zstd
// frame that asks for a 2 TiB window, are one clear error, no panic and no
// huge allocation.
func TestCompressedGarbage(t *testing.T) {
	for name, b := range map[string][]byte{
		"gzip garbage":      {0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02},
		"zstd garbage":      {0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff},
		"zstd huge window":  {0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0x01, 0x00, 0x00},
		"gzip of not pcap":  gzipped(t, []byte("hello, not a capture at all")),
		"gzip of too short": gzipped(t, []byte{0x0a}),
	} {
		t.Run(name, func(t *testing.T) {
			rd, err := NewReader(bytes.NewReader(b))
			if err == nil {
				var p Packet
				err = rd.Next(&p)
			}
			if err == nil || err == io.EOF || strings.Contains(err.Error(), "\n") {
				t.Errorf("%v, want one line of error", err)
			}
		})
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// TestDamagedTimestamps: a packet stamped before 1970 or after 9999 (a
// damaged timestamp) is kept, at the epoch; others keep their time, up to
// the end of 9999.
func TestDamagedTimestamps(t *testing.T) {
	epoch := time.Unix(0, 0)
	stamps := []struct{ ts, want time.Time }{
		{time.Date(2023, 11, 14, 0, 0, 0, 0, time.UTC), time.Date(2023, 11, 14, 0, 0, 0, 0, time.UTC)},
		{time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
		{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), epoch},
		{time.Date(12000, 6, 1, 0, 0, 0, 0, time.UTC), epoch},
	}
	// pcapgo's writer stamps in nanoseconds, which end in 2554: the file is
	// built here, its interface without an if_tsresol option, so in
	// microseconds (pcapng's default).
	le := binary.LittleEndian
	block := func(b []byte, typ uint32, body []byte) []byte {
		n := uint32(12 + len(body))
		b = le.AppendUint32(le.AppendUint32(b, typ), n)
		return le.AppendUint32(append(b, body...), n)
	}
	b := block(nil, 0x0A0D0D0A, []byte{0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	b = block(b, 1, le.AppendUint32(le.AppendUint16(le.AppendUint16(nil, uint16(layers.LinkTypeRaw)), 0), 65535))
	frame := ipv4TCP("hi") // 42 bytes, padded to 44
	for _, s := range stamps {
		us := uint64(s.ts.Unix()) * 1e6
		body := le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, 0), uint32(us>>32)), uint32(us))
		body = le.AppendUint32(le.AppendUint32(body, uint32(len(frame))), uint32(len(frame)))
		body = append(append(body, frame...), make([]byte, (4-len(frame)%4)%4)...)
		b = block(b, 6, body)
	}
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range stamps {
		var p Packet
		if err := r.Next(&p); err != nil || !p.Time.Equal(s.want) {
			t.Errorf("packet %d stamped %v: %v, read as %v; want %v", i, s.ts, err, p.Time, s.want)
		}
	}
}
