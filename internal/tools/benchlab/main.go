//go:build linux

// Command benchlab measures what tapping costs: the throughput of a bulk
// transfer through the lab (real kubectl port-forward, GET /bytes?n=N) with
// every tap `pftap lab` uses switched on (L1 and L2 below TLS inside the
// servers, live captures on L2's wire, L3, L4 and the pod's eth0), and with
// all of them off, in one run; and the kernel drops of the captures. Needs
// root and kubectl.
//
//	go run ./internal/tools/benchlab [-mib 1024] [-runs 3]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"

	"github.com/pftap/pftap/capture"
	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/lab"
)

func main() {
	mib := flag.Int("mib", 1024, "MiB to transfer from the pod")
	runs := flag.Int("runs", 3, "transfers per mode (the median is reported)")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the taps-on runs to this file")
	which := flag.String("taps", "all", "which taps are on in the taps-on runs: all, inprocess (L1/L2 below TLS) or live (the packet captures)")
	flag.Parse()
	n := int64(*mib) << 20
	fmt.Printf("GET /bytes?n=%d through kubectl port-forward (WebSocket), %d runs per mode\n\n", n, *runs)
	fmt.Printf("%-9s %12s %10s %12s %8s\n", "taps", "MiB/s", "seconds", "tapped bytes", "drops")
	if *profile != "" {
		if f, err := os.Create(*profile); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	// Alternate the modes, so that drift in the machine's load hits both.
	rates := map[bool][]float64{}
	tapped := map[bool]int64{}
	drops := map[bool]uint64{}
	for r := 0; r < *runs; r++ {
		for _, taps := range []bool{false, true} {
			rate, tb, dr, err := transfer(n, taps && *which != "live", taps && *which != "inprocess")
			if err != nil {
				fmt.Fprintln(os.Stderr, "benchlab:", err)
				os.Exit(1)
			}
			rates[taps] = append(rates[taps], rate)
			tapped[taps] += tb
			drops[taps] += dr
		}
	}
	med := map[bool]float64{}
	for _, taps := range []bool{false, true} {
		sort.Float64s(rates[taps])
		med[taps] = rates[taps][len(rates[taps])/2]
		mode := map[bool]string{false: "off", true: "on (" + *which + ")"}[taps]
		fmt.Printf("%-9s %12.1f %10.2f %12d %8d   runs: %.1f\n", mode, med[taps], float64(n)/(1<<20)/med[taps], tapped[taps]/int64(*runs), drops[taps], rates[taps])
	}
	off, on := med[false], med[true]
	fmt.Printf("\ntaps on run at %.1f%% of taps off\n", 100*on/off)
}

// transfer builds a lab, forwards, downloads n bytes and returns MiB/s, the
// bytes the taps saw and the kernel drops.
func transfer(n int64, inproc, live bool) (float64, int64, uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var tapped atomic.Int64
	cfg := lab.Config{}
	if inproc {
		cfg.TapConn = func(leg string, c net.Conn) net.Conn {
			return capture.NewServerTapParts(c, func(ts time.Time, head, payload []byte) { tapped.Add(int64(len(head) + len(payload))) })
		}
	}
	l, err := lab.Start(ctx, cfg)
	if err != nil {
		return 0, 0, 0, err
	}
	defer l.Close()
	local, err := kubectl.FreePort()
	if err != nil {
		return 0, 0, 0, err
	}
	var srcs []*capture.Source
	var wg sync.WaitGroup
	stop := make(chan struct{})
	if live {
		for _, leg := range l.Legs {
			if leg.ID == "L1" {
				continue
			}
			s, err := capture.Open(capture.Options{Netns: leg.Netns, Interface: leg.Interface, Filter: fmt.Sprintf("tcp port %d", leg.Server.Port())})
			if err != nil {
				return 0, 0, 0, err
			}
			srcs = append(srcs, s)
			wg.Add(1)
			go func(s *capture.Source) {
				defer wg.Done()
				capture.Drain(s, stop, func(data []byte, _ gopacket.CaptureInfo) { tapped.Add(int64(len(data))) })
			}(s)
		}
	}
	f, err := kubectl.PortForward(ctx, kubectl.Options{Kubeconfig: l.Kubeconfig, Target: "pod/nginx", Remote: 80, Local: local, WebSocket: true})
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.Stop()
	t0 := time.Now()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/bytes?n=%d", local, n))
	if err != nil {
		return 0, 0, 0, err
	}
	got, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	secs := time.Since(t0).Seconds()
	if got != n {
		return 0, 0, 0, fmt.Errorf("got %d of %d bytes", got, n)
	}
	close(stop)
	wg.Wait()
	var drops uint64
	for _, s := range srcs {
		st, _ := s.Stats()
		drops += st.Drops
		s.Close()
	}
	return float64(n) / (1 << 20) / secs, tapped.Load(), drops, nil
}
