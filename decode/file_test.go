package decode

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/pftap/pftap/decode/packet"
)

const recDir = "../testdata/recordings/"

func readRecording(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(recDir + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTruncatedCaptureKeepsWhatWasDecoded(t *testing.T) {
	full := readRecording(t, "spdy-get.pcapng")
	var whole []*Event
	if _, err := DecodeCapture(bytes.NewReader(full), Options{}, func(e *Event) { whole = append(whole, e) }); err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{len(full) * 2 / 3, len(full) - 3} {
		var evs []*Event
		sum, err := DecodeCapture(bytes.NewReader(full[:cut]), Options{}, func(e *Event) { evs = append(evs, e) })
		if !errors.Is(err, packet.ErrBadCapture) || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("cut at %d: error %v, want a truncated-capture error", cut, err)
		}
		if sum.Packets == 0 || len(evs) < 10 {
			t.Errorf("cut at %d: only %d events from %d packets", cut, len(evs), sum.Packets)
		}
		// What was decoded before the cut matches the full decode.
		for i := 0; i < len(evs) && i < 10; i++ {
			if evs[i].Text != whole[i].Text {
				t.Errorf("cut at %d: event %d is %q, want %q", cut, i, evs[i].Text, whole[i].Text)
			}
		}
	}
}

func TestGarbageInput(t *testing.T) {
	for name, in := range map[string][]byte{
		"empty":        nil,
		"text":         []byte("this is not a capture file at all\n"),
		"pcapng magic": {0x0a, 0x0d, 0x0d, 0x0a, 0xff, 0xff, 0xff, 0xff, 1, 2, 3},
		"pcap header":  {0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0},
	} {
		_, err := DecodeCapture(bytes.NewReader(in), Options{}, func(*Event) {})
		if !errors.Is(err, packet.ErrBadCapture) {
			t.Errorf("%s: error %v, want ErrBadCapture", name, err)
		}
	}
}

// TestMidSessionCapture drops the start of the recording, as a capture
// started while port-forward was already running would: DATA is still
// framed and counted, and the missing header context is reported.
func TestMidSessionCapture(t *testing.T) {
	rd, err := packet.NewReader(bytes.NewReader(readRecording(t, "spdy-get.pcapng")))
	if err != nil {
		t.Fatal(err)
	}
	var pkts []packet.Packet
	var p packet.Packet
	for rd.Next(&p) == nil {
		q := p
		q.Payload = append([]byte(nil), p.Payload...)
		pkts = append(pkts, q)
	}
	// Find the packet that carries the first SPDY DATA frame of the
	// apiserver connection (the GET / forwarded to the pod), and start there.
	start := -1
	for i, q := range pkts {
		if bytes.Contains(q.Payload, []byte("GET / HTTP/1.1")) && q.Dst.Port() != q.Src.Port() && start < 0 && i > 20 {
			start = i - 1 // its 8-byte frame header came one packet before
		}
	}
	if start < 0 {
		t.Fatal("no DATA frame found in the recording")
	}
	var evs []*Event
	d := NewDecoder(Options{Verbosity: 1}, func(e *Event) { evs = append(evs, e) })
	for i := start; i < len(pkts); i++ {
		d.Add(&pkts[i])
	}
	sum := d.Finish()
	got := texts(evs)
	if !strings.Contains(got, "joined a SPDY session mid-way") {
		t.Errorf("no mid-session warning:\n%s", got)
	}
	if !strings.Contains(got, `DATA stream=3 len=79 "GET / HTTP/1.1`) {
		t.Errorf("DATA not framed after a mid-session join:\n%s", got)
	}
	if sum.DecodeErrors != 0 {
		t.Errorf("a capture that starts late is not bad input: %+v", sum)
	}
}
