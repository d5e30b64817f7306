//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/internal/testenv"
	"github.com/pftap/pftap/lab"
	"github.com/pftap/pftap/session"
)

var (
	agentBenchPairs = flag.Int("agentbench.pairs", 3, "BenchmarkTraceAgent: none/deploy pairs")
	agentBenchMiB   = flag.Int("agentbench.mib", 1024, "BenchmarkTraceAgent: MiB of the GET")
	agentBenchW     = flag.Bool("agentbench.w", true, "BenchmarkTraceAgent: also run --agent deploy -w (recorded to the benchmark's temporary directory)")
)

// BenchmarkTraceAgent runs one GET of -agentbench.mib MiB with curl
// through `pftap trace --agent none` and `pftap trace --agent deploy` (the
// agent a pod the lab's node runs as a process of its own), alternated in
// pairs through one lab, and, with -agentbench.w, through --agent deploy
// -w. For each run it prints curl's time, the bytes over the host↔apiserver
// link (both ways), the gaps and drops of every leg (trace's JSON), the
// agent's CPU seconds per GiB and peak RSS, the bytes it sent trace, and,
// with -w, the packets recorded and how many lost their payload; then the
// medians and deploy's ratios to none.
//
//	sudo go test -run '^$' -bench TraceAgent -benchtime 1x ./cmd/pftap [-args -agentbench.pairs 3]
func BenchmarkTraceAgent(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	testenv.NeedTool(b, "curl", "curl")
	bin := buildPftap(b)
	session.QuietUpstream()
	l, err := lab.Start(context.Background(), lab.Config{AgentBinary: bin})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	dir := b.TempDir()
	size := int64(*agentBenchMiB) << 20
	modes := [][]string{{"none"}, {"deploy"}}
	if *agentBenchW {
		modes = append(modes, []string{"deploy", "-w", filepath.Join(dir, "bench.pcapng")})
	}
	runs := map[string][]agentBench{}
	var curlRatios, linkRatios []float64
	for i := 0; i < b.N; i++ {
		for p := 0; p < *agentBenchPairs; p++ {
			got := map[string]agentBench{}
			order := modes
			if p%2 == 1 {
				order = append([][]string{modes[1], modes[0]}, modes[2:]...)
			}
			for _, m := range order {
				name := strings.Join(m[:min(len(m), 2)], " ")
				r, err := agentBenchOnce(bin, l, m, size)
				if err != nil {
					b.Fatalf("%s: %v", name, err)
				}
				os.Remove(filepath.Join(dir, "bench.pcapng"))
				got[name] = r
				runs[name] = append(runs[name], r)
				fmt.Printf("pair %d %-12s %s\n", p+1, name, r)
			}
			curlRatios = append(curlRatios, got["deploy"].curl/got["none"].curl)
			linkRatios = append(linkRatios, float64(got["deploy"].link)/float64(got["none"].link))
		}
	}
	for _, m := range modes {
		name := strings.Join(m[:min(len(m), 2)], " ")
		var c, cpu, rss []float64
		for _, r := range runs[name] {
			c, cpu, rss = append(c, r.curl), append(cpu, r.agentCPU), append(rss, float64(r.agentRSS))
		}
		fmt.Printf("median %-12s curl %.2f s  agent %.2f CPU-s/GiB  peak RSS %.0f MiB\n", name, median(c), median(cpu)/(float64(size)/(1<<30)), median(rss)/(1<<20))
	}
	fmt.Printf("deploy / none (median of pairs): curl's time %.2f×, host↔apiserver bytes %.3f×\n", median(curlRatios), median(linkRatios))
	b.ReportMetric(median(curlRatios), "curl-ratio")
	b.ReportMetric(median(linkRatios), "link-ratio")
}

// agentBench is one run of BenchmarkTraceAgent.
type agentBench struct {
	curl      float64 // seconds
	link      int64   // bytes over the host's link to the apiserver, both ways
	legs      []benchLeg
	agentCPU  float64 // seconds
	agentRSS  int64   // bytes
	agentSent int64
	packets   int64 // recorded, with -w
}

type benchLeg struct {
	Leg       string `json:"leg"`
	Packets   int64  `json:"packets"`
	Gaps      int    `json:"gaps"`
	Drops     uint64 `json:"drops"`
	Shortened uint64 `json:"shortened"`
}

func (r agentBench) String() string {
	var legs []string
	for _, l := range r.legs {
		s := fmt.Sprintf("%s %d/%d", strings.Fields(l.Leg)[0], l.Gaps, l.Drops)
		if l.Shortened > 0 {
			s += fmt.Sprintf(" (%d shortened)", l.Shortened)
		}
		legs = append(legs, s)
	}
	s := fmt.Sprintf("curl %5.2f s  link %7.1f MiB  gaps/drops %s", r.curl, float64(r.link)/(1<<20), strings.Join(legs, ", "))
	if r.agentSent > 0 {
		s += fmt.Sprintf("  agent %.2f CPU-s, peak RSS %.0f MiB, sent %.1f MiB", r.agentCPU, float64(r.agentRSS)/(1<<20), float64(r.agentSent)/(1<<20))
	}
	if r.packets > 0 {
		s += fmt.Sprintf("  recorded %d packets", r.packets)
	}
	return s
}

func linkBytes(dev string) int64 {
	var n int64
	for _, f := range []string{"rx_bytes", "tx_bytes"} {
		b, _ := os.ReadFile(filepath.Join("/sys/class/net", dev, "statistics", f))
		v, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		n += v
	}
	return n
}

// agentBenchRun runs trace in mode (none, or deploy with its flags), GETs
// size bytes with curl through it, and reads what it and its agent cost.
func agentBenchOnce(bin string, l *lab.Lab, mode []string, size int64) (r agentBench, err error) {
	local, err := kubectl.FreePort()
	if err != nil {
		return r, err
	}
	args := []string{"trace", "--json", "--kubeconfig", l.Kubeconfig, "--agent", mode[0], "--agent-image", "example.org/pftap:bench"}
	args = append(append(args, mode[1:]...), "pod/nginx", fmt.Sprintf("%d:80", local))
	cmd := exec.Command(bin, args...)
	out, _ := cmd.StdoutPipe()
	var errb strings.Builder
	cmd.Stderr = &errb
	link0 := linkBytes(l.HostLink())
	if err := cmd.Start(); err != nil {
		return r, err
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var kept []string
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(os.Interrupt)
		for line := range lines {
			kept = append(kept, line)
		}
		cmd.Wait()
	}
	defer stop()
	// Forwarding once the local port accepts.
	deadline := time.Now().Add(60 * time.Second)
	for !portOpen(local) {
		if time.Now().After(deadline) {
			return r, fmt.Errorf("trace did not forward in 60 s: %s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t0 := time.Now()
	c := exec.Command("curl", "-sS", "-o", "/dev/null", fmt.Sprintf("http://127.0.0.1:%d/bytes?n=%d", local, size))
	if b, err := c.CombinedOutput(); err != nil {
		return r, fmt.Errorf("curl: %v %s", err, b)
	}
	r.curl = time.Since(t0).Seconds()
	// The agent's process (the lab's node runs it), read before trace
	// ends it.
	if mode[0] == "deploy" {
		if pid := agentPID(bin); pid > 0 {
			r.agentCPU, r.agentRSS = procCPU(pid), procHWM(pid)
		}
	}
	time.Sleep(300 * time.Millisecond)
	stop()
	r.link = linkBytes(l.HostLink()) - link0
	for _, line := range kept {
		switch {
		case strings.Contains(line, `"kind":"legs"`):
			var v struct {
				Legs      []benchLeg `json:"legs"`
				AgentSent int64      `json:"agent_sent"`
			}
			if json.Unmarshal([]byte(line), &v) == nil {
				r.legs, r.agentSent = v.Legs, v.AgentSent
			}
		}
	}
	if m := regexpFind(`wrote \S+ \((\d+) packets`, errb.String()); m != "" {
		r.packets, _ = strconv.ParseInt(m, 10, 64)
	}
	return r, nil
}

func portOpen(port int) bool {
	c, err := netDialTimeout(port)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// agentPID is the pid of the agent the lab's node runs (bin agent ...).
func agentPID(bin string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) >= 2 && args[0] == bin && args[1] == "agent" {
			return pid
		}
	}
	return 0
}

// procCPU is a process's user and system time, in seconds.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / 100 // USER_HZ
}

// procHWM is a process's peak resident set, in bytes.
func procHWM(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(io.Reader(f))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func netDialTimeout(port int) (net.Conn, error) {
	return net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
}

// regexpFind is the first group of re's first match in s, or "".
func regexpFind(re, s string) string {
	if m := regexp.MustCompile(re).FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}
