//go:build linux

package session

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pftap/pftap/internal/tcpframe"

	"github.com/pftap/pftap/leg"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/pftap/pftap/capture"
	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/internal/testenv"
)

var liveDecodeFile = flag.String("livedecode.file", "", "BenchmarkLiveDecode: a pftap lab -w recording to decode (default: one made with the lab, 64 MiB from the pod)")

type legFrame struct {
	ts   time.Time
	data []byte
}

// readLegFrames reads a recording's frames into memory, per interface.
func readLegFrames(tb testing.TB, path string) (names []string, legs [][]legFrame, total int64) {
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		tb.Fatal(err)
	}
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		for len(legs) <= ci.InterfaceIndex {
			legs = append(legs, nil)
		}
		legs[ci.InterfaceIndex] = append(legs[ci.InterfaceIndex], legFrame{ci.Timestamp, data})
		total += int64(len(data))
	}
	for i := range legs {
		ifc, err := r.Interface(i)
		if err != nil {
			tb.Fatal(err)
		}
		names = append(names, ifc.Name)
	}
	return names, legs, total
}

// BenchmarkLiveDecode measures what pftap lab does with each frame of each
// leg beside the forward, apart from the taps themselves: a recording's
// frames (every leg of a bulk transfer through the lab, in memory) are
// decoded leg by leg, each leg on a goroutine of its own as the live
// session's drains and taps are, with the per-flow digests, while the
// renderer takes the events. It reports the frames' bytes per second and
// the CPU time per GiB of frames.
//
//	go test -run '^$' -bench LiveDecode ./session [-args -livedecode.file session.pcapng]
func BenchmarkLiveDecode(b *testing.B) {
	path := *liveDecodeFile
	if path == "" {
		if os.Geteuid() != 0 {
			b.Skip("needs root to make a recording with the lab (or -livedecode.file)")
		}
		path = filepath.Join(b.TempDir(), "bulk.pcapng")
		if err := runLabFor(b, LabOptions{Runtime: "cri-streaming", App: "builtin", Client: Kubectl,
			Requests: []Request{{"GET", fmt.Sprintf("/bytes?n=%d", 64<<20)}}, Concurrency: 1, Write: path}); err != nil {
			b.Fatal(err)
		}
	}
	names, legs, total := readLegFrames(b, path)
	b.SetBytes(total)
	b.ResetTimer()
	cpu0 := testenv.CPUTime()
	var events int
	for i := 0; i < b.N; i++ {
		ld := NewLive(0, 0)
		for _, n := range names {
			ld.AddLeg(leg.Leg{Name: n})
		}
		done := make(chan Decoded)
		go func() { done <- ld.Run(func(*decode.Event) { events++ }) }()
		var wg sync.WaitGroup
		for k, frames := range legs {
			wg.Add(1)
			go func(k int, frames []legFrame) {
				defer wg.Done()
				for _, f := range frames {
					ld.Frame(k, f.ts, f.data)
				}
			}(k, frames)
		}
		wg.Wait()
		ld.Finish()
		res := <-done
		if res.Summary.BytesFromPod == 0 || len(res.Correlator.Result()) == 0 {
			b.Fatalf("nothing decoded: %+v", res.Summary)
		}
	}
	b.StopTimer()
	b.ReportMetric((testenv.CPUTime()-cpu0).Seconds()/(float64(total)*float64(b.N)/(1<<30)), "cpu-s/GiB")
}

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

// runLabFor runs a lab session to its end, its events dropped.
func runLabFor(tb testing.TB, o LabOptions) error {
	s, err := StartLab(context.Background(), o)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Events(func(*decode.Event) {})
	}()
	res, err := s.Run()
	<-done
	if _, cerr := s.Close(nil); err == nil {
		err = cerr
	}
	for _, r := range res.Results {
		if err == nil && r.Err != nil {
			err = fmt.Errorf("%s: %v", r.What, r.Err)
		}
	}
	return err
}
