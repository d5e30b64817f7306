//go:build linux

// Command benchcapture measures `pftap capture -w` on a pod's lo during a
// bulk transfer, beside `tcpdump -w` on the same transfer in the same run:
// packets seen, kernel drops, and CPU seconds per GiB. Both get the same
// kernel buffer. Needs root, tcpdump and iproute2.
//
//	go run ./internal/tools/benchcapture [-gib 1] [-buffer 64]
package main

import (
	"bufio"
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
	"syscall"
	"time"

	"github.com/pftap/pftap/internal/nsenter"
)

func main() {
	gib := flag.Float64("gib", 1, "GiB to transfer")
	buffer := flag.Int("buffer", 64, "kernel buffer for both tools, MiB")
	packetBuffered := flag.Bool("U", false, "run tcpdump with -U (flush per packet, as pftap does)")
	flag.Parse()
	dir, err := os.MkdirTemp("", "pftap-benchcapture-")
	check(err)
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "pftap")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/pftap").CombinedOutput(); err != nil {
		check(fmt.Errorf("go build: %v: %s", err, out))
	}
	ns := fmt.Sprintf("pftap-bench-%d", os.Getpid())
	check(nsenter.Create(ns))
	defer nsenter.Delete(ns)

	var l net.Listener
	check(nsenter.Do(ns, func() (err error) { l, err = net.Listen("tcp", "127.0.0.1:80"); return }))
	defer l.Close()
	total := int64(*gib * (1 << 30))
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 1<<20)
		for i := range buf {
			buf[i] = byte(i%251) + 1
		}
		for sent := int64(0); sent < total; {
			n, err := c.Write(buf[:min(int64(len(buf)), total-sent)])
			if err != nil {
				break
			}
			sent += int64(n)
		}
		c.Close()
	}()

	pf := exec.Command(bin, "capture", "--netns", ns, "-i", "lo", "--buffer", strconv.Itoa(*buffer), "-w", filepath.Join(dir, "pftap.pcapng"), "tcp", "port", "80")
	tdArgs := []string{"netns", "exec", ns, "tcpdump"}
	if *packetBuffered {
		tdArgs = append(tdArgs, "-U")
	}
	td := exec.Command("ip", append(tdArgs, "-i", "lo", "-B", strconv.Itoa(*buffer*1024), "-w", filepath.Join(dir, "tcpdump.pcap"), "tcp port 80")...)
	pfErr := start(pf, "capturing on")
	tdErr := start(td, "listening on")

	var c net.Conn
	check(nsenter.Do(ns, func() (err error) { c, err = net.Dial("tcp", "127.0.0.1:80"); return }))
	t0 := time.Now()
	n, _ := io.Copy(io.Discard, c)
	elapsed := time.Since(t0)
	c.Close()
	time.Sleep(500 * time.Millisecond)
	fmt.Printf("transfer: %.2f GiB over the pod's lo in %.2fs (%.0f MiB/s), buffer %d MiB each\n\n", float64(n)/(1<<30), elapsed.Seconds(), float64(n)/(1<<20)/elapsed.Seconds(), *buffer)
	fmt.Printf("%-8s %10s %8s %12s %12s %10s\n", "tool", "packets", "drops", "CPU s", "CPU s/GiB", "max RSS")
	for _, r := range []struct {
		name string
		cmd  *exec.Cmd
		out  *strings.Builder
	}{{"pftap", pf, pfErr}, {"tcpdump", td, tdErr}} {
		r.cmd.Process.Signal(syscall.SIGINT)
		r.cmd.Wait()
		ru := r.cmd.ProcessState.SysUsage().(*syscall.Rusage)
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		pk, dr := counts(r.name, r.out.String())
		fmt.Printf("%-8s %10s %8s %12.2f %12.2f %7.1f MiB\n", r.name, pk, dr, cpu, cpu/(float64(n)/(1<<30)), float64(ru.Maxrss)/1024)
	}
}

// start runs cmd and waits until its stderr says it is capturing; the
// returned builder collects the rest of stderr.
func start(cmd *exec.Cmd, ready string) *strings.Builder {
	stderr, _ := cmd.StderrPipe()
	check(cmd.Start())
	var b strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), ready) {
			break
		}
	}
	go func() {
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
		}
	}()
	return &b
}

var (
	pftapRe   = regexp.MustCompile(`(\d+) packets captured .* (\d+) dropped by the kernel`)
	tcpdumpRe = regexp.MustCompile(`(?s)(\d+) packets captured.*?(\d+) packets dropped by kernel`)
)

func counts(name, out string) (string, string) {
	re := pftapRe
	if name == "tcpdump" {
		re = tcpdumpRe
	}
	if m := re.FindStringSubmatch(out); m != nil {
		return m[1], m[2]
	}
	return "?", "?"
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchcapture:", err)
		os.Exit(1)
	}
}
