package decode

import (
	"fmt"
	"strings"
	"testing"
)

func tlsRecordBytes(typ byte, n int) []byte {
	b := []byte{typ, 3, 3, byte(n >> 8), byte(n)}
	for i := 0; i < n; i++ {
		b = append(b, byte(i*7))
	}
	return b
}

// TestTLSRecordsAnySegmentation walks TLS records cut every way: headers
// split across segments, records spanning many, several in one, an empty
// record. Each record is reported once, with its length and the time of the
// segment that carried its first byte, and with -v as an event at its end.
func TestTLSRecordsAnySegmentation(t *testing.T) {
	type rec struct {
		typ byte
		n   int
	}
	recs := []rec{{0x16, 120}, {0x14, 1}, {0x17, 0}, {0x17, 16401}, {0x17, 3}, {0x15, 2}}
	var stream []byte
	for _, r := range recs {
		stream = append(stream, tlsRecordBytes(r.typ, r.n)...)
	}
	for _, seg := range []int{1, 2, 3, 4, 5, 6, 7, 13, 1000, 1 << 20} {
		c := newConv(10250)
		c.send(0, stream, seg)
		c.fin()
		var got []TLSRecord
		evs, _ := decodeConv(t, Options{Verbosity: 1, Records: func(r *TLSRecord) { got = append(got, *r) }}, c)
		if len(got) != len(recs) {
			t.Fatalf("seg %d: %d records, want %d", seg, len(got), len(recs))
		}
		off := 0
		for i, r := range recs {
			// The packet carrying byte off is packet 2 + off/seg (after
			// SYN and SYN-ACK), 1 ms apart.
			wantT := c.pkts[2+off/seg].Time
			if i == 0 {
				// The stream is known to be TLS once 3 bytes are in:
				// that segment's time.
				wantT = c.pkts[2+2/seg].Time
			}
			if got[i].Type != r.typ || got[i].Length != r.n || !got[i].Time.Equal(wantT) {
				t.Errorf("seg %d record %d: type %#x len %d at %v, want %#x len %d at %v", seg, i, got[i].Type, got[i].Length, got[i].Time, r.typ, r.n, wantT)
			}
			off += 5 + r.n
		}
		n := strings.Count(texts(evs), "(encrypted)")
		if n != len(recs) {
			t.Errorf("seg %d: %d record events with -v, want %d:\n%s", seg, n, len(recs), texts(evs))
		}
	}
}

// TestTLSGarbageAfterRecords: a bad header after good records is one
// decode error at its offset, and nothing after it is walked.
func TestTLSGarbageAfterRecords(t *testing.T) {
	stream := append(tlsRecordBytes(0x16, 10), tlsRecordBytes(0x17, 4)...)
	stream = append(stream, []byte("GARBAGE, NOT TLS")...)
	stream = append(stream, tlsRecordBytes(0x17, 4)...)
	c := newConv(10250)
	c.send(0, stream, 4)
	c.fin()
	var got []TLSRecord
	evs, sum := decodeConv(t, Options{Records: func(r *TLSRecord) { got = append(got, *r) }}, c)
	if len(got) != 2 {
		t.Errorf("%d records, want 2", len(got))
	}
	if sum.DecodeErrors != 1 || !strings.Contains(texts(evs), fmt.Sprintf("offset %d", 15+9)) && !strings.Contains(texts(evs), "not a TLS record header") {
		t.Errorf("%d decode errors:\n%s", sum.DecodeErrors, texts(evs))
	}
}

// TestConnectTunnel: a CONNECT granted with a 2xx opens a tunnel, whose
// bytes (TLS here) are read afresh both ways, whatever the segmentation;
// a refused CONNECT is an answer like any other, and the client's bytes
// after it are HTTP again.
func TestConnectTunnel(t *testing.T) {
	connect := []byte("CONNECT 10.0.0.2:6443 HTTP/1.1\r\nHost: 10.0.0.2:6443\r\n\r\n")
	hello, reply := tlsRecordBytes(0x16, 300), append(tlsRecordBytes(0x16, 90), tlsRecordBytes(0x17, 40)...)
	for _, seg := range []int{1, 7, 1 << 20} {
		c := newConv(3129)
		c.send(0, connect, seg)
		c.send(1, []byte("HTTP/1.1 200 Connection established\r\n\r\n"), seg)
		c.send(0, hello, seg)
		c.send(1, reply, seg)
		c.fin()
		evs, sum := decodeConv(t, Options{Verbosity: 1}, c)
		got := texts(evs)
		if !strings.Contains(got, "CONNECT 10.0.0.2:6443") || !strings.Contains(got, "200 Connection established  → CONNECT tunnel") ||
			strings.Count(got, "(encrypted)") != 3 || sum.Warnings != 0 || sum.DecodeErrors != 0 {
			t.Errorf("seg %d: %d warnings, %d decode errors:\n%s", seg, sum.Warnings, sum.DecodeErrors, got)
		}
	}
	c := newConv(3129)
	c.send(0, connect, 1<<20)
	c.send(1, []byte("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"), 1<<20)
	c.send(0, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 1<<20)
	c.fin()
	evs, sum := decodeConv(t, Options{}, c)
	var refused *Event
	for _, e := range evs {
		if e.Kind == KindHTTPResponse {
			refused = e
		}
	}
	if refused == nil || refused.Status != 407 || refused.Protocol != "tunnel refused" || !strings.Contains(texts(evs), "GET /") || sum.DecodeErrors != 0 {
		t.Errorf("refused CONNECT:\n%s", texts(evs))
	}
}
