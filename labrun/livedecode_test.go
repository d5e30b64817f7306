//go:build linux

package labrun

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/internal/testenv"
	"github.com/pftap/pftap/leg"
	"github.com/pftap/pftap/session"
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
		if err := runLabFor(b, LabOptions{Runtime: "cri-streaming", App: "builtin", Client: session.Kubectl,
			Requests: []session.Request{{Method: "GET", Path: fmt.Sprintf("/bytes?n=%d", 64<<20)}}, Concurrency: 1, Write: path}); err != nil {
			b.Fatal(err)
		}
	}
	names, legs, total := readLegFrames(b, path)
	b.SetBytes(total)
	b.ResetTimer()
	cpu0 := testenv.CPUTime()
	var events int
	for i := 0; i < b.N; i++ {
		ld := session.NewLive(0, 0)
		for _, n := range names {
			ld.AddLeg(leg.Leg{Name: n})
		}
		done := make(chan session.Decoded)
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
