//go:build unix

// Command benchdecode measures `pftap decode` on large SPDY bulk-transfer
// captures beside tshark on the same files, both reading every SPDY frame:
// `pftap decode -v --json` (an event per frame) against tshark with its
// SPDY dissector engaged (`-d tcp.port==6443,http`, the HTTP upgrade
// handing the stream to SPDY, and the frames' type, stream and length
// printed). It prints packets/s, MB/s, CPU seconds and peak memory (max
// RSS) at two file sizes, to show that memory does not grow with the
// file, and pftap's speed and memory against tshark's.
//
//	go run ./internal/tools/benchdecode [-sizes 256,1024] [-pftap PATH] [-runs 3]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pftap/pftap/internal/synth"
)

func main() {
	sizes := flag.String("sizes", "256,1024", "transfer sizes in MiB")
	bin := flag.String("pftap", "", "pftap binary (default: build one)")
	dir := flag.String("dir", "", "where to write the captures (default: a temporary directory)")
	runs := flag.Int("runs", 3, "runs of each tool per file; the fastest is shown")
	flag.Parse()
	if *dir == "" {
		d, err := os.MkdirTemp("", "pftap-bench-")
		check(err)
		defer os.RemoveAll(d)
		*dir = d
	}
	if *bin == "" {
		*bin = filepath.Join(*dir, "pftap")
		out, err := exec.Command("go", "build", "-o", *bin, "./cmd/pftap").CombinedOutput()
		if err != nil {
			check(fmt.Errorf("go build: %v: %s", err, out))
		}
	}
	fmt.Println("pftap/1 is pftap with GOMAXPROCS=1 pinned to one core.")
	fmt.Printf("%-8s %10s %9s  %-7s %8s %12s %9s %9s %10s\n", "transfer", "packets", "file MB", "tool", "wall s", "packets/s", "MB/s", "CPU s", "max RSS")
	for _, s := range strings.Split(*sizes, ",") {
		mib, err := strconv.Atoi(strings.TrimSpace(s))
		check(err)
		path := filepath.Join(*dir, fmt.Sprintf("bulk-%dmib.pcap", mib))
		f, err := os.Create(path)
		check(err)
		pkts, err := synth.Write(f, synth.Config{Bytes: int64(mib) << 20})
		check(err)
		// On disk before any tool reads it: the kernel writing a
		// gigabyte back would otherwise slow whichever runs first.
		check(f.Sync())
		check(f.Close())
		st, _ := os.Stat(path)
		mb := float64(st.Size()) / 1e6
		tools := [][]string{
			{"pftap", *bin, "decode", "-v", "--json", path},
			{"pftap/1", "env", "GOMAXPROCS=1", "taskset", "-c", "0", *bin, "decode", "-v", "--json", path},
		}
		if _, err := exec.LookPath("tshark"); err == nil {
			tools = append(tools, []string{"tshark", "tshark", "-n", "-r", path, "-d", "tcp.port==6443,http",
				"-T", "fields", "-e", "spdy.type", "-e", "spdy.streamid", "-e", "spdy.length"})
		}
		best := map[string]result{}
		for _, t := range tools {
			// The best of -runs: the machine's noise only ever slows a run.
			for i := 0; i < *runs; i++ {
				wall, cpu, rss, err := measure(t[1:])
				check(err)
				if b, ok := best[t[0]]; !ok || wall < b.wall {
					best[t[0]] = result{wall, cpu, rss}
				}
			}
			r := best[t[0]]
			fmt.Printf("%5d MiB %10d %9.1f  %-7s %8.3f %12.0f %9.1f %9.2f %7.1f MiB\n", mib, pkts, mb, t[0], r.wall.Seconds(),
				float64(pkts)/r.wall.Seconds(), mb/r.wall.Seconds(), r.cpu.Seconds(), float64(r.rss)/1024)
		}
		if ts, ok := best["tshark"]; ok {
			for _, name := range []string{"pftap", "pftap/1"} {
				p := best[name]
				fmt.Printf("%5d MiB  %s against tshark: %.1f× faster, %.1f× less CPU, %.1f× less memory\n", mib, name,
					ts.wall.Seconds()/p.wall.Seconds(), ts.cpu.Seconds()/p.cpu.Seconds(), float64(ts.rss)/float64(p.rss))
			}
		}
		os.Remove(path)
	}
}

type result struct {
	wall, cpu time.Duration
	rss       int64 // KiB
}

func measure(argv []string) (wall, cpu time.Duration, maxRSSKiB int64, err error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = nil, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, 0, fmt.Errorf("%s: %w", argv[0], err)
	}
	wall = time.Since(start)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return wall, cpu, ru.Maxrss, nil
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchdecode:", err)
		os.Exit(1)
	}
}
