// Command mkrec records real kubectl port-forward sessions for testdata/.
//
// It starts pftap's lab in plain mode (no TLS, so every leg can be read:
// the apiserver with the upstream upgrade-aware proxy and WebSocket
// tunnelling handler, the kubelet, the runtime's streaming server from
// k8s.io/cri-streaming, and the app inside the pod's network namespace),
// captures every leg in its own namespace with pftap's capture package,
// runs the real /usr/bin/kubectl port-forward and real curl through it,
// and writes one pcapng per scenario with one interface per leg. It needs
// root, kubectl and curl.
//
//	go run ./internal/tools/mkrec -out testdata/recordings [scenario...]
//
// testdata/README.md lists the scenarios.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pftap/pftap/leg"

	"github.com/gopacket/gopacket"

	"github.com/pftap/pftap/capture"
	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/lab"
)

type scenario struct {
	name        string
	about       string
	spdy        bool // the lab refuses kubectl's WebSocket upgrade: it falls back to SPDY
	noWebSocket bool // an apiserver from before 1.31
	// kubernetes and kubelet are the era (lab.Config's versions; "": the
	// lab's default).
	kubernetes, kubelet string
	runtime             string
	remotePort          int
	curls               []string // paths
	parallel            int      // run the curls this many at a time
	expectFail          bool
}

var scenarios = []scenario{
	{name: "spdy-get", about: "SPDY/3.1 upgrade, one GET / through kubectl port-forward", spdy: true, remotePort: 80, curls: []string{"/"}},
	{name: "websocket-get", about: "WebSocket upgrade (SPDY tunnelled in binary messages), one GET /; Kubernetes 1.35: the apiserver tunnels, SPDY on L2", kubernetes: "1.35", remotePort: 80, curls: []string{"/"}},
	{name: "k137-websocket-get", about: "Kubernetes 1.37: the node declares ExtendWebSocketsToKubelet, the WebSocket goes on to the kubelet, which speaks SPDY to the runtime; one GET /", kubernetes: "1.37", remotePort: 80, curls: []string{"/"}},
	{name: "skew-136-135-websocket-get", about: "a 1.36 apiserver with a 1.35 kubelet (version skew): the node declares nothing, the apiserver tunnels; one GET /", kubernetes: "1.36", kubelet: "1.35", remotePort: 80, curls: []string{"/"}},
	{name: "spdy-concurrent", about: "SPDY, five concurrent GET / through one port-forward", spdy: true, remotePort: 80,
		curls: []string{"/", "/", "/", "/", "/"}, parallel: 5},
	{name: "websocket-concurrent", about: "WebSocket tunnel, five concurrent GET / (Kubernetes 1.35)", kubernetes: "1.35", remotePort: 80,
		curls: []string{"/", "/", "/", "/", "/"}, parallel: 5},
	{name: "spdy-bulk-1mib", about: "SPDY, GET /bytes?n=1048576: 1 MiB of non-zero pattern data from the pod", spdy: true, remotePort: 80,
		curls: []string{"/bytes?n=1048576"}},
	{name: "spdy-refused", about: "SPDY, port 81 where nothing listens: the error stream carries the runtime's error", spdy: true, remotePort: 81,
		curls: []string{"/"}, expectFail: true},
	{name: "websocket-refused", about: "WebSocket tunnel, port 81 where nothing listens (Kubernetes 1.35)", kubernetes: "1.35", remotePort: 81, curls: []string{"/"}, expectFail: true},
	{name: "websocket-fallback", about: "the apiserver refuses WebSocket (pre-1.31): kubectl falls back to SPDY", noWebSocket: true, remotePort: 80,
		curls: []string{"/"}},
	{name: "socat-get", about: "the socat runtime (kubelet runs nsenter socat, no streaming server), SPDY, one GET /", runtime: lab.RuntimeSocat,
		spdy: true, remotePort: 80, curls: []string{"/"}},
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

type captured struct {
	leg  int
	ts   time.Time
	data []byte
	orig int
}

func record(sc scenario, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := lab.Config{Name: "pftap-" + strconv.Itoa(os.Getpid()) + "-rec", Plain: true, NoWebSocket: sc.noWebSocket, RefuseWebSocket: sc.spdy, Runtime: sc.runtime}
	for _, v := range []struct {
		s  string
		to *lab.Version
	}{{sc.kubernetes, &cfg.Kubernetes}, {sc.kubelet, &cfg.Kubelet}} {
		if v.s == "" {
			continue
		}
		ver, err := lab.ParseVersion(v.s)
		if err != nil {
			return err
		}
		*v.to = ver
	}
	l, err := lab.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer l.Close()
	local, err := kubectl.FreePort()
	if err != nil {
		return err
	}

	// One capture per leg, in the leg's namespace, plus the user's own
	// connection to kubectl on the host's lo.
	type tap struct {
		leg capture.Leg
		src *capture.Source
	}
	var taps []tap
	add := func(id leg.ID, name, about, netns, iface string, port uint16) error {
		src, err := capture.Open(capture.Options{Netns: netns, Interface: iface, Filter: fmt.Sprintf("tcp port %d", port), BufferMiB: 64})
		if err != nil {
			return err
		}
		where := "host"
		if netns != "" {
			where = "netns " + netns
		}
		taps = append(taps, tap{capture.Leg{Leg: leg.Leg{ID: id, Name: name, Description: fmt.Sprintf("%s; captured on %s in the %s", about, iface, where)}}, src})
		return nil
	}
	if err := add(leg.User, "user→kubectl", "curl to kubectl's local port", "", "lo", uint16(local)); err != nil {
		return err
	}
	// The lab is plain HTTP here: L2 on the wire is L2's plaintext.
	for _, lg := range l.Legs {
		if err := add(lg.ID, string(lg.ID)+" "+strings.ReplaceAll(lg.Name, " → ", "→"), lg.About+"; server "+lg.Server.String(), lg.Netns, lg.Interface, lg.Server.Port()); err != nil {
			return err
		}
	}
	var mu sync.Mutex
	var pkts []captured
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, t := range taps {
		wg.Add(1)
		go func(i int, src *capture.Source) {
			defer wg.Done()
			capture.Drain(src, stop, func(data []byte, ci gopacket.CaptureInfo) {
				mu.Lock()
				pkts = append(pkts, captured{i, ci.Timestamp, append([]byte(nil), data...), ci.Length})
				mu.Unlock()
			})
		}(i, t.src)
	}

	kf, err := kubectl.PortForward(ctx, kubectl.Options{Kubeconfig: l.Kubeconfig, Target: "pod/" + l.Config().Pod,
		Remote: sc.remotePort, Local: local})
	if err != nil {
		close(stop)
		return err
	}
	sem := make(chan struct{}, max(sc.parallel, 1))
	var cw sync.WaitGroup
	var curlErrs []error
	for _, p := range sc.curls {
		cw.Add(1)
		sem <- struct{}{}
		go func(p string) {
			defer cw.Done()
			defer func() { <-sem }()
			out, err := exec.CommandContext(ctx, "curl", "-sS", "--max-time", "20", "-o", "/dev/null",
				fmt.Sprintf("http://127.0.0.1:%d%s", local, p)).CombinedOutput()
			if err != nil {
				mu.Lock()
				curlErrs = append(curlErrs, fmt.Errorf("curl %s: %v: %s", p, err, out))
				mu.Unlock()
			}
		}(p)
	}
	cw.Wait()
	time.Sleep(300 * time.Millisecond)
	kf.Stop()
	time.Sleep(500 * time.Millisecond) // the last FINs
	close(stop)
	wg.Wait()
	var drops uint64
	for _, t := range taps {
		st, _ := t.src.Stats()
		drops += st.Drops
		t.src.Close()
	}
	if drops > 0 {
		return fmt.Errorf("the kernel dropped %d packets: try again", drops)
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

	// Write in capture-time order, one interface per leg.
	sort.SliceStable(pkts, func(i, j int) bool { return pkts[i].ts.Before(pkts[j].ts) })
	tmp := path + ".tmp"
	w, err := capture.Create(tmp, fmt.Sprintf("pftap mkrec scenario %q: %s; lab runtime %s, plain HTTP; kubectl %s", sc.name, sc.about,
		l.Config().Runtime, kubectlVersion()))
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	ids := make([]int, len(taps))
	for i, t := range taps {
		if ids[i], err = w.AddLeg(t.leg); err != nil {
			return err
		}
	}
	for _, p := range pkts {
		if err := w.WritePacket(ids[p.leg], p.ts, p.data, p.orig, ""); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func kubectlVersion() string {
	out, _ := exec.Command(kubectl.Path, "version", "--client").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "Client Version: "); ok {
			return v
		}
	}
	return "?"
}
