//go:build linux

package session

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pftap/pftap/internal/tcpframe"

	"github.com/pftap/pftap/leg"

	"github.com/pftap/pftap/capture"
	"github.com/pftap/pftap/decode"
)

// TestLiveDecoderOrdersLegs feeds two legs at once, as pftap lab does: an
// in-process tap on a real loopback connection (stamped when decoded) and
// captured frames handed over late, a batch at a time, as a capture ring
// does. The renderer gets every event once, in time order across the legs,
// with connections numbered in the order they began; frames that come
// after the end are dropped.
func TestLiveDecoderOrdersLegs(t *testing.T) {
	ld := NewLive(0, 0)
	tapLeg, capLeg := ld.AddLeg(leg.Leg{Name: "tapped"}), ld.AddLeg(leg.Leg{Name: "captured"})
	var got []*decode.Event
	done := make(chan Decoded)
	go func() { done <- ld.Run(func(e *decode.Event) { got = append(got, e) }) }()

	// The captured leg: an HTTP exchange whose frames are stamped as they
	// happen, 4 ms apart, but handed over at the end in one batch (the
	// first one 30 ms late).
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cli, srv := netip.MustParseAddrPort("10.250.0.1:40000"), netip.MustParseAddrPort("10.250.0.2:80")
		type fr struct {
			ts   time.Time
			data []byte
		}
		var batch []fr
		seq := [2]uint32{1000, 5000}
		send := func(dir int, flags uint8, payload string) {
			src, dst := cli, srv
			if dir == 1 {
				src, dst = srv, cli
			}
			batch = append(batch, fr{time.Now(), tcpframe.Append(nil, src, dst, seq[dir], seq[1-dir], flags, []byte(payload))})
			seq[dir] += uint32(len(payload))
			if flags&(tcpframe.FlagSYN|tcpframe.FlagFIN) != 0 {
				seq[dir]++
			}
			time.Sleep(4 * time.Millisecond)
		}
		send(0, tcpframe.FlagSYN, "")
		send(1, tcpframe.FlagSYN|tcpframe.FlagACK, "")
		send(0, tcpframe.FlagACK, "")
		send(0, tcpframe.FlagPSH|tcpframe.FlagACK, "GET /captured HTTP/1.1\r\nHost: x\r\n\r\n")
		send(1, tcpframe.FlagPSH|tcpframe.FlagACK, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		send(0, tcpframe.FlagFIN|tcpframe.FlagACK, "")
		send(1, tcpframe.FlagFIN|tcpframe.FlagACK, "")
		time.Sleep(5 * time.Millisecond)
		for _, f := range batch {
			ld.Frame(capLeg, f.ts, f.data)
		}
	}()

	// The tapped leg: a real connection through an in-process tap.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		c.Read(buf)
		time.Sleep(5 * time.Millisecond)
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
		c.Close()
	}()
	time.Sleep(6 * time.Millisecond) // the captured leg's connection begins first, its request comes later
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := capture.NewTapParts(raw, func(_ time.Time, head, payload []byte) { ld.Parts(tapLeg, head, payload, nil) })
	c.Write([]byte("GET /tapped HTTP/1.1\r\nHost: x\r\n\r\n"))
	io.Copy(io.Discard, c)
	c.Close()
	wg.Wait()
	time.Sleep(10 * time.Millisecond)
	ld.Finish()
	// Late frames, after the end: dropped, not decoded beside Finish.
	ld.Parts(tapLeg, tcpframe.AppendHeaderNoChecksum(nil, netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2"), 1, 0, tcpframe.FlagSYN, 0), nil, nil)
	res := <-done

	var paths []string
	for i, e := range got {
		if i > 0 && e.Time.Before(got[i-1].Time) {
			t.Errorf("event %d (%s %s) is earlier than the one before it (%s %s)", i, e.Leg, e.Text, got[i-1].Leg, got[i-1].Text)
		}
		if e.Kind == decode.KindHTTPRequest {
			paths = append(paths, fmt.Sprintf("%s#%d%s", e.Leg, e.Conn, e.Path))
		}
	}
	if want := []string{"tapped#2/tapped", "captured#1/captured"}; fmt.Sprint(paths) != fmt.Sprint(want) {
		t.Errorf("requests %v, want %v (in time order, numbered as they began)", paths, want)
	}
	if res.Summary.Connections != 2 || res.Summary.Legs["tapped"] == nil || res.Summary.Legs["captured"] == nil {
		t.Errorf("summary %+v", res.Summary)
	}
}
