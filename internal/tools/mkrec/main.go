// Command mkrec records real kubectl port-forward sessions for testdata/.
//
// It starts pftap's lab (the upstream apiserver proxy, tunnelling handler
// and cri-streaming port-forward server, with the app inside a network
// namespace), captures the host's lo with dumpcap, runs the real
// /usr/bin/kubectl port-forward and real curl through it, and writes one
// pcapng per scenario. It needs root, kubectl, curl and dumpcap (tshark).
//
//	go run ./internal/tools/mkrec -out testdata/recordings [scenario...]
//
// testdata/README.md lists the scenarios.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/lab"
)

type scenario struct {
	name        string
	about       string
	spdy        bool // KUBECTL_PORT_FORWARD_WEBSOCKETS=false
	noWebSocket bool // the apiserver refuses WebSocket
	remotePort  int
	curls       []string // paths, run one after another
	parallel    int      // run the curls this many at a time
	expectFail  bool
}

var scenarios = []scenario{
	{name: "spdy-get", about: "SPDY/3.1 upgrade, one GET / through kubectl port-forward", spdy: true, remotePort: 80, curls: []string{"/"}},
	{name: "websocket-get", about: "WebSocket upgrade (SPDY tunnelled in binary messages), one GET /", remotePort: 80, curls: []string{"/"}},
	{name: "spdy-concurrent", about: "SPDY, five concurrent GET / through one port-forward", spdy: true, remotePort: 80,
		curls: []string{"/", "/", "/", "/", "/"}, parallel: 5},
	{name: "websocket-concurrent", about: "WebSocket tunnel, five concurrent GET /", remotePort: 80,
		curls: []string{"/", "/", "/", "/", "/"}, parallel: 5},
	{name: "spdy-bulk-1mib", about: "SPDY, GET /bytes?n=1048576: 1 MiB of non-zero pattern data from the pod", spdy: true, remotePort: 80,
		curls: []string{"/bytes?n=1048576"}},
	{name: "spdy-refused", about: "SPDY, port 81 where nothing listens: the error stream carries the runtime's error", spdy: true, remotePort: 81,
		curls: []string{"/"}, expectFail: true},
	{name: "websocket-refused", about: "WebSocket tunnel, port 81 where nothing listens", remotePort: 81, curls: []string{"/"}, expectFail: true},
	{name: "websocket-fallback", about: "the apiserver refuses WebSocket (pre-1.31): kubectl falls back to SPDY", noWebSocket: true, remotePort: 80,
		curls: []string{"/"}},
}

func main() {
	out := flag.String("out", "testdata/recordings", "directory for the recordings")
	flag.Parse()
	want := map[string]bool{}
	for _, a := range flag.Args() {
		want[a] = true
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fatal(err)
	}
	for _, sc := range scenarios {
		if len(want) > 0 && !want[sc.name] {
			continue
		}
		path := filepath.Join(*out, sc.name+".pcapng")
		if err := record(sc, path); err != nil {
			fatal(fmt.Errorf("%s: %w", sc.name, err))
		}
		fmt.Printf("wrote %s: %s\n", path, sc.about)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "mkrec:", err)
	os.Exit(1)
}

func record(sc scenario, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := lab.Start(ctx, lab.Config{Name: "pftap-mkrec-" + strconv.Itoa(os.Getpid()), NoWebSocket: sc.noWebSocket})
	if err != nil {
		return err
	}
	defer l.Close()
	local, err := kubectl.FreePort()
	if err != nil {
		return err
	}
	filter := fmt.Sprintf("tcp port %s or tcp port %d or tcp port %d", l.APIServer.Port(), l.StreamingAddr.Port, local)
	tmp := path + ".tmp"
	stopCapture, err := startDumpcap(ctx, tmp, filter)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	kf, err := kubectl.PortForward(ctx, kubectl.Options{Kubeconfig: l.Kubeconfig, Target: "pod/" + l.Config().Pod,
		Remote: sc.remotePort, Local: local, WebSocket: !sc.spdy})
	if err != nil {
		stopCapture()
		return err
	}

	// The curls, at most sc.parallel at a time.
	sem := make(chan struct{}, max(sc.parallel, 1))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var curlErrs []error
	for _, p := range sc.curls {
		wg.Add(1)
		sem <- struct{}{}
		go func(p string) {
			defer wg.Done()
			defer func() { <-sem }()
			out, err := exec.CommandContext(ctx, "curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
				fmt.Sprintf("http://127.0.0.1:%d%s", local, p)).CombinedOutput()
			if err != nil {
				mu.Lock()
				curlErrs = append(curlErrs, fmt.Errorf("curl %s: %v: %s", p, err, out))
				mu.Unlock()
			}
		}(p)
	}
	wg.Wait()
	time.Sleep(300 * time.Millisecond)
	kf.Stop()
	// Let the last FINs reach the capture before stopping it.
	time.Sleep(500 * time.Millisecond)
	if err := stopCapture(); err != nil {
		return err
	}
	if len(curlErrs) > 0 && !sc.expectFail {
		return errors.Join(curlErrs...)
	}
	if len(curlErrs) == 0 && sc.expectFail {
		return errors.New("curl succeeded where the scenario expects a failure")
	}
	if sc.expectFail {
		fmt.Printf("kubectl said: %s\n", strings.TrimSpace(kf.Output()))
	}
	return os.Rename(tmp, path)
}

// startDumpcap captures the host's lo into a pcapng file and returns a
// function that stops it and waits for the file to be complete.
func startDumpcap(ctx context.Context, file, filter string) (func() error, error) {
	cmd := exec.CommandContext(ctx, "dumpcap", "-q", "-B", "64", "-i", "lo", "-f", filter, "-w", file)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dumpcap (apt-get install tshark): %w", err)
	}
	started := make(chan struct{})
	var msg strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			msg.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Capturing on") {
				once.Do(func() { close(started) })
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("dumpcap did not start: %s", msg.String())
	}
	return func() error {
		cmd.Process.Signal(syscall.SIGINT)
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil
		}
		return err
	}, nil
}
