//go:build linux

package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/pftap/pftap/internal/testenv"
	"github.com/pftap/pftap/labrun"
)

var (
	tapCostMiB    = flag.Int("tapcost.mib", 1024, "BenchmarkLabTapCost: MiB per transfer")
	tapCostPairs  = flag.Int("tapcost.pairs", 5, "BenchmarkLabTapCost: taps-off/taps-on pairs of transfers")
	tapCostTaps   = flag.String("tapcost.taps", "", `BenchmarkLabTapCost: the taps of the taps-on runs: "" (all, decoded as pftap lab does), "nostore" (all, frames counted and dropped), "kernel" (only the packet captures, frames counted: what the kernel's copies into their rings cost), "inprocess" or "live" (one kind, decoded)`)
	tapCostClient = flag.String("tapcost.client", "kubectl", "BenchmarkLabTapCost: the port-forward client, kubectl or pftap")
	tapCostWrite  = flag.Bool("tapcost.write", false, "BenchmarkLabTapCost: taps-on runs also write the session to a pcapng (-w) as it goes")
	tapCostZstd   = flag.Bool("tapcost.zst", false, "BenchmarkLabTapCost: with -tapcost.write, the recording is compressed as written (-w FILE.pcapng.zst)")
	tapCostOnly   = flag.String("tapcost.only", "", `BenchmarkLabTapCost: "on" or "off" runs only that side of each pair (to profile it)`)
)

// BenchmarkLabTapCost measures what tapping costs in the main job: a
// transfer (GET /bytes?n=1 GiB from the pod, real kubectl port-forward over
// WebSocket) through `pftap lab` exactly as users run it, every tap on and
// every frame decoded as it comes (or spooled and written, with
// -tapcost.write), against the same chain with no tap at all. Runs
// alternate off/on in pairs so that drift in the machine's speed hits
// both; it prints every run and reports the medians, the median of the
// pairs' ratios and the kernel's drops.
//
//	go test -run '^$' -bench LabTapCost -benchtime 1x ./cmd/pftap [-args -tapcost.pairs 7]
func BenchmarkLabTapCost(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	n := int64(*tapCostMiB) << 20
	var off, on, ratios []float64
	var cpu [2][]float64
	var drops uint64
	for i := 0; i < b.N; i++ {
		for p := 0; p < *tapCostPairs; p++ {
			var rate, secs [2]float64
			for k, taps := range []string{"none", *tapCostTaps} {
				if *tapCostOnly != "" && (*tapCostOnly == "on") != (k == 1) {
					rate[k] = 1
					continue
				}
				r, c, d, err := tapCostTransfer(n, taps)
				if err != nil {
					b.Fatal(err)
				}
				rate[k], secs[k] = r, c
				cpu[k] = append(cpu[k], c)
				drops += d
			}
			off, on = append(off, rate[0]), append(on, rate[1])
			ratios = append(ratios, rate[1]/rate[0])
			b.Logf("pair %d: taps off %.1f MiB/s, taps on %.1f MiB/s: %.1f%%; CPU per GiB %.2f s off, %.2f s on", p+1, rate[0], rate[1], 100*rate[1]/rate[0], secs[0], secs[1])
		}
	}
	mOff, mOn, mRatio := median(off), median(on), median(ratios)
	fmt.Printf("tap cost, %d MiB per transfer, %d pairs: taps off %.1f MiB/s, taps on %.1f MiB/s (medians); taps on at %.1f%% of taps off (median of the pairs), %.1f%% (ratio of the medians); CPU per GiB moved %.2f s off, %.2f s on (medians, pftap and kubectl, whole runs); %d drops\n",
		*tapCostMiB, len(ratios), mOff, mOn, 100*mRatio, 100*mOn/mOff, median(cpu[0]), median(cpu[1]), drops)
	b.ReportMetric(mOff, "MiB/s-off")
	b.ReportMetric(mOn, "MiB/s-on")
	b.ReportMetric(100*mRatio, "%-on/off")
	b.ReportMetric(float64(drops), "drops")
}

// tapCostTransfer runs one `pftap lab` session moving n bytes from the pod
// and returns the request's MiB/s, the CPU seconds per GiB moved that the
// whole run took (this process and its children, kubectl among them) and
// the captures' drops.
func tapCostTransfer(n int64, taps string) (float64, float64, uint64, error) {
	ios, _, errOut := testIO()
	opts := &LabRunOptions{IO: ios, Runtime: "cri-streaming", App: "builtin", Client: *tapCostClient,
		Requests: []string{fmt.Sprintf("GET /bytes?n=%d", n)}, Concurrency: 1, taps: tapModes[taps]}
	if _, ok := tapModes[taps]; !ok {
		return 0, 0, 0, fmt.Errorf("-tapcost.taps %q: want one of none, nostore, kernel, inprocess, live or nothing", taps)
	}
	if *tapCostWrite && taps != "none" {
		dir, err := os.MkdirTemp("", "pftap-tapcost-")
		if err != nil {
			return 0, 0, 0, err
		}
		defer os.RemoveAll(dir)
		opts.Write = filepath.Join(dir, "session.pcapng")
		if *tapCostZstd {
			opts.Write += ".zst"
		}
	}
	cpu0 := testenv.CPUTime()
	sess, err := runLab(opts)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("taps %q: %v\n%s", taps, err, errOut)
	}
	secs := (testenv.CPUTime() - cpu0).Seconds() / (float64(n) / (1 << 30))
	r := sess.Results[0]
	if r.Err != nil || r.Bytes != n {
		return 0, 0, 0, fmt.Errorf("taps %q: got %d of %d bytes: %v", taps, r.Bytes, n, r.Err)
	}
	var drops uint64
	for _, d := range sess.Drops {
		drops += d
	}
	return float64(n) / (1 << 20) / r.Took.Seconds(), secs, drops, nil
}

// tapModes are the taps of -tapcost.taps.
var tapModes = map[string]labrun.Taps{
	"":          0,
	"none":      labrun.NoTaps,
	"nostore":   labrun.CountOnly,
	"kernel":    labrun.NoInProcess | labrun.CountOnly,
	"inprocess": labrun.NoCaptures,
	"live":      labrun.NoInProcess,
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
