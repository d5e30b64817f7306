//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/internal/testenv"
	"github.com/pftap/pftap/lab"
	"github.com/pftap/pftap/session"
)

var (
	traceBenchPairs   = flag.Int("tracebench.pairs", 4, "BenchmarkTraceVsKubectl: kubectl/trace pairs")
	traceBenchMiB     = flag.Int("tracebench.mib", 1024, "BenchmarkTraceVsKubectl: MiB of the bulk transfer")
	traceBenchGets    = flag.Int("tracebench.gets", 1000, "BenchmarkTraceVsKubectl: small GETs per client and pair")
	traceBenchKubectl = flag.String("tracebench.kubectl", "today", `BenchmarkTraceVsKubectl: "today" (kubectl built from k8s.io/kubectl, the client-go pftap has) or "machine" (/usr/bin/kubectl)`)
)

// BenchmarkTraceVsKubectl runs `pftap trace --agent none` (as users run it:
// L1 tapped below TLS, every frame decoded, the timeline written) and
// `kubectl port-forward` through one lab, alternated in pairs (each pair's
// order swapped), both WebSocket: a bulk GET of -tracebench.mib MiB, then
// -tracebench.gets small GETs one after another, each on its own
// connection (a port-forward request each), timing each to its response
// header. It prints every run, the medians and trace's ratios to kubectl.
//
//	sudo go test -run '^$' -bench TraceVsKubectl -benchtime 1x ./cmd/pftap [-args -tracebench.pairs 4]
func BenchmarkTraceVsKubectl(b *testing.B) {
	bin, l := benchLab(b)
	kc := kubectl.Path
	if *traceBenchKubectl == "today" {
		kc = testenv.TodaysKubectl(b)
	}
	clients := map[string]func(local int) []string{
		"kubectl": func(local int) []string {
			return []string{kc, "--kubeconfig", l.Kubeconfig, "port-forward", "pod/nginx", fmt.Sprintf("%d:80", local)}
		},
		"trace": func(local int) []string {
			return []string{bin, "trace", "--agent", "none", "--no-color", "--kubeconfig", l.Kubeconfig, "pod/nginx", fmt.Sprintf("%d:80", local)}
		},
	}
	type run struct{ mibps, p50, p90, p99, cpu float64 }
	runs := map[string][]run{}
	var ratios, p50s, p99s, cpus []float64
	for i := 0; i < b.N; i++ {
		for p := 0; p < *traceBenchPairs; p++ {
			order := []string{"kubectl", "trace"}
			if p%2 == 1 {
				order = []string{"trace", "kubectl"}
			}
			got := map[string]run{}
			for _, name := range order {
				r, err := traceBenchRun(clients[name], int64(*traceBenchMiB)<<20, *traceBenchGets)
				if err != nil {
					b.Fatalf("%s: %v", name, err)
				}
				got[name] = r
				runs[name] = append(runs[name], r)
				fmt.Printf("pair %d %-7s  bulk %7.1f MiB/s   first byte of a small GET p50 %6.0f µs  p90 %6.0f µs  p99 %6.0f µs   client CPU %5.2f s\n",
					p+1, name, r.mibps, r.p50, r.p90, r.p99, r.cpu)
			}
			ratios = append(ratios, got["trace"].mibps/got["kubectl"].mibps)
			p50s = append(p50s, got["trace"].p50/got["kubectl"].p50)
			p99s = append(p99s, got["trace"].p99/got["kubectl"].p99)
			cpus = append(cpus, got["trace"].cpu/got["kubectl"].cpu)
		}
	}
	for _, name := range []string{"kubectl", "trace"} {
		var m, a, c, u []float64
		for _, r := range runs[name] {
			m, a, c, u = append(m, r.mibps), append(a, r.p50), append(c, r.p99), append(u, r.cpu)
		}
		fmt.Printf("median %-7s bulk %7.1f MiB/s   first byte p50 %6.0f µs  p99 %6.0f µs   client CPU %5.2f s\n", name, median(m), median(a), median(c), median(u))
	}
	fmt.Printf("trace / kubectl (median of pairs): throughput %.2f×, first-byte p50 %.2f×, p99 %.2f× (below 1: trace's first byte comes sooner), client CPU %.2f×\n",
		median(ratios), median(p50s), median(p99s), median(cpus))
	b.ReportMetric(median(ratios), "throughput-ratio")
	b.ReportMetric(median(p50s), "p50-ratio")
}

// benchLab needs root, builds pftap and starts a default lab that the
// benchmark's end removes.
func benchLab(b *testing.B) (bin string, l *lab.Lab) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	bin = buildPftap(b)
	session.QuietUpstream()
	l, err := lab.Start(context.Background(), lab.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return bin, l
}

// traceBenchRun starts one client, waits for it to forward, and measures
// the bulk transfer and the small GETs through it.
func traceBenchRun(argv func(local int) []string, bulk int64, gets int) (r struct{ mibps, p50, p90, p99, cpu float64 }, err error) {
	local, err := kubectl.FreePort()
	if err != nil {
		return r, err
	}
	args := argv(local)
	cmd := exec.Command(args[0], args[1:]...)
	if p := os.Getenv("TRACEBENCH_CPUPROFILE"); p != "" && strings.HasSuffix(args[0], "pftap") {
		// A profile of trace's side: PFTAP_CPUPROFILE for the binary.
		cmd.Env = append(os.Environ(), "PFTAP_CPUPROFILE="+p)
	}
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return r, err
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		// The client's own CPU time for the whole run.
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		}
	}()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		once := false
		for sc.Scan() {
			if !once && strings.HasPrefix(sc.Text(), "Forwarding from") {
				once = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		return r, fmt.Errorf("%s did not forward in 30 s", args[0])
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", local)
	get := func(path string) (time.Duration, int64, error) {
		tr := &http.Transport{DisableKeepAlives: true, DisableCompression: true}
		defer tr.CloseIdleConnections()
		t0 := time.Now()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Minute}).Get(base + path)
		if err != nil {
			return 0, 0, err
		}
		first := time.Since(t0)
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return first, n, err
	}
	// One GET first: the client's connection to the apiserver is made.
	if _, _, err := get("/"); err != nil {
		return r, err
	}
	t0 := time.Now()
	if _, n, err := get(fmt.Sprintf("/bytes?n=%d", bulk)); err != nil || n != bulk {
		return r, fmt.Errorf("bulk GET: %d of %d bytes: %v", n, bulk, err)
	}
	r.mibps = float64(bulk) / (1 << 20) / time.Since(t0).Seconds()
	var firsts []float64
	for i := 0; i < gets; i++ {
		first, _, err := get("/")
		if err != nil {
			return r, fmt.Errorf("small GET %d: %v", i, err)
		}
		firsts = append(firsts, float64(first.Microseconds()))
	}
	sort.Float64s(firsts)
	pct := func(p float64) float64 { return firsts[min(len(firsts)-1, int(p*float64(len(firsts))))] }
	r.p50, r.p90, r.p99 = pct(0.50), pct(0.90), pct(0.99)
	return r, nil
}

var scaleSizes = flag.String("scale.requests", "100,1000,3000", "BenchmarkScale: the request counts, all sent at once")

// BenchmarkScale sends N requests at once through one `pftap lab` (as
// users run it, every leg tapped and decoded) and through one `pftap trace
// --agent none` on a lab that is up, for each N of -scale.requests, and
// prints the wall time, the CPU time and the peak RSS of the pftap process,
// each per request, how many requests were correlated end to end, and what
// each request more costs from one N to the next: that marginal cost
// should stay flat as N grows (nothing quadratic), and every request be
// correlated.
//
//	sudo go test -run '^$' -bench Scale -benchtime 1x ./cmd/pftap [-args -scale.requests 100,1000,3000]
func BenchmarkScale(b *testing.B) {
	bin, l := benchLab(b)
	fmt.Printf("%-6s %6s %9s %10s %12s %10s %12s %11s\n", "run", "N", "wall s", "ms/req", "CPU ms/req", "max RSS", "KiB/req", "correlated")
	prev := map[string]scaleStats{}
	prevN := map[string]int{}
	var growth []string
	marginal := func(name string, n int, st scaleStats) {
		if p, ok := prev[name]; ok {
			d := float64(n - prevN[name])
			growth = append(growth, fmt.Sprintf("%-6s %5d → %5d requests: each more one costs %.2f ms of wall time, %.2f ms of CPU, %.1f KiB of peak RSS",
				name, prevN[name], n, float64((st.wall-p.wall).Microseconds())/1000/d, float64((st.cpu-p.cpu).Microseconds())/1000/d, float64(st.rssKiB-p.rssKiB)/d))
		}
		prev[name], prevN[name] = st, n
	}
	defer func() {
		for _, g := range growth {
			fmt.Println(g)
		}
	}()
	for i := 0; i < b.N; i++ {
		for _, f := range strings.Split(*scaleSizes, ",") {
			var n int
			fmt.Sscan(f, &n)
			// pftap lab: its own lab, N requests at once.
			st, err := scaleRun(exec.Command(bin, "lab", "--json", "--repeat", fmt.Sprint(n), "--concurrency", fmt.Sprint(n)), nil)
			if err != nil {
				b.Fatalf("lab, %d requests: %v", n, err)
			}
			st.print("lab", n)
			marginal("lab", n, st)
			// pftap trace on the lab that is up, N requests at once.
			local, err := kubectl.FreePort()
			if err != nil {
				b.Fatal(err)
			}
			cmd := exec.Command(bin, "trace", "--agent", "none", "--json", "--kubeconfig", l.Kubeconfig, "pod/nginx", fmt.Sprintf("%d:80", local))
			st, err = scaleRun(cmd, func() error { return concurrentGets(local, n) })
			if err != nil {
				b.Fatalf("trace, %d requests: %v", n, err)
			}
			st.print("trace", n)
			marginal("trace", n, st)
		}
	}
}

type scaleStats struct {
	wall, cpu  time.Duration
	rssKiB     int64
	correlated int
}

func (s scaleStats) print(name string, n int) {
	fmt.Printf("%-6s %6d %9.2f %10.2f %12.2f %7.0f MiB %12.1f %6d of %d\n", name, n, s.wall.Seconds(),
		float64(s.wall.Milliseconds())/float64(n), float64(s.cpu.Microseconds())/1000/float64(n),
		float64(s.rssKiB)/1024, float64(s.rssKiB)/float64(n), s.correlated, n)
}

// scaleRun runs cmd (pftap with --json); with use, once it forwards, use
// runs and then cmd is interrupted. It counts the requests whose hops were
// correlated (a "hops" object with a request ID).
func scaleRun(cmd *exec.Cmd, use func() error) (st scaleStats, err error) {
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return st, err
	}
	ready := make(chan struct{})
	counted := make(chan int)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 16<<20)
		n, once := 0, false
		for sc.Scan() {
			line := sc.Text()
			if !once && (strings.Contains(line, `"kind":"path"`) || strings.Contains(line, "Forwarding from")) {
				once = true
				close(ready)
			}
			if strings.HasPrefix(line, `{"kind":"hops"`) && strings.Contains(line, `"request_id"`) {
				n++
			}
		}
		counted <- n
	}()
	if use != nil {
		select {
		case <-ready:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			return st, errors.New("did not forward in 30 s")
		}
		// trace prints its path before it listens: wait for the port.
		time.Sleep(500 * time.Millisecond)
		if err := use(); err != nil {
			cmd.Process.Kill()
			return st, err
		}
		time.Sleep(time.Second) // the last frames' decoding
		cmd.Process.Signal(os.Interrupt)
	}
	st.correlated = <-counted
	cmd.Wait()
	st.wall = time.Since(t0)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		st.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		st.rssKiB = ru.Maxrss
	}
	return st, nil
}

// concurrentGets sends n GETs at once to a local port, each on its own
// connection.
func concurrentGets(port, n int) error {
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			tr := &http.Transport{DisableKeepAlives: true}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: time.Minute}).Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	var first error
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
