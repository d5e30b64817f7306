//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/pftap/pftap/decode/packet"
	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/internal/testenv"
)

// TestLabMainJob runs `pftap lab` for both runtimes and both kubectl
// transports and checks what a person reads: every leg, the request on each,
// the per-hop line across the whole chain, the silent eth0.
func TestLabMainJob(t *testing.T) {
	needRootCmd(t)
	containerd := []string{"L1 client→apiserver", "L2 apiserver→kubelet", "L3 kubelet→runtime", "L4 runtime→app"}
	socat := []string{"L1 client→apiserver", "L2 apiserver→kubelet", "L4 socat→app"}
	for _, tc := range []struct {
		runtime, client   string
		spdy, noWebSocket bool
		legs              []string
	}{
		{"cri-streaming", "pftap", false, false, containerd},
		{"cri-streaming", "pftap", true, false, containerd},
		{"cri-streaming", "pftap", false, true, containerd},
		{"cri-streaming", "kubectl", false, false, containerd},
		{"cri-streaming", "kubectl", true, false, containerd},
		{"socat", "pftap", false, false, socat},
		{"socat", "kubectl", false, false, socat},
	} {
		tc.legs = append([]string{"user→" + tc.client}, tc.legs...)
		t.Run(fmt.Sprintf("%s/%s/spdy=%v/no-websocket=%v", tc.runtime, tc.client, tc.spdy, tc.noWebSocket), func(t *testing.T) {
			ios, out, errOut := testIO()
			pcap := filepath.Join(t.TempDir(), "lab.pcapng")
			err := labRun(&LabRunOptions{IO: ios, Runtime: tc.runtime, App: "builtin", Client: tc.client, SPDY: tc.spdy, NoWebSocket: tc.noWebSocket,
				Requests: []string{"GET /"}, Concurrency: 1, Write: pcap, NoColor: true})
			if err != nil {
				t.Fatalf("pftap lab: %v\n%s", err, errOut)
			}
			o := out.String()
			var toPod, fromPod string
			for _, l := range strings.Split(o, "\n") {
				switch {
				case strings.HasPrefix(l, "  request 0  → pod "):
					toPod = l
				case strings.HasPrefix(strings.TrimLeft(l, " "), "← pod ") && toPod != "" && fromPod == "":
					fromPod = l
				}
			}
			// The bytes cross the legs in chain order towards the pod and
			// in reverse order back.
			inOrder := func(line string, legs []string) bool {
				at := 0
				for _, leg := range legs {
					i := strings.Index(line[at:], leg)
					if i < 0 {
						return false
					}
					at += i + len(leg)
				}
				return true
			}
			back := append([]string(nil), tc.legs...)
			for i, j := 0, len(back)-1; i < j; i, j = i+1, j-1 {
				back[i], back[j] = back[j], back[i]
			}
			if !inOrder(toPod, tc.legs) || !inOrder(fromPod, back) {
				t.Errorf("hops out of chain order:\n%s\n%s", toPod, fromPod)
			}
			upgrade := "upgrade=websocket"
			if tc.spdy {
				upgrade = "portforward  upgrade=SPDY/3.1"
			}
			if !strings.Contains(o, upgrade) || tc.noWebSocket && !strings.Contains(o, "upgrade refused") {
				t.Errorf("L1 does not show the expected upgrade (%s):\n%s", upgrade, o)
			}
			// (Teardown may leave warnings: a GOAWAY cut short by a closing
			// upstream component is reported as it crossed the wire.)
			for _, s := range []string{"GET /                    200 OK, 274 bytes", "eth0 saw 0 packets of this traffic", "0 gaps (0 bytes), ", " 0 decode errors",
				"open data stream 3 → port 80, request 0", "witness pod eth0                  0 packets"} {
				if !strings.Contains(o, s) {
					t.Errorf("output lacks %q:\n%s", s, o)
				}
			}
			f, err := os.Open(pcap)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, err := packet.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			var p packet.Packet
			for r.Next(&p) == nil {
			}
			if len(r.Interfaces()) < len(tc.legs)+2 {
				t.Errorf("the recording has %d interfaces: %+v", len(r.Interfaces()), r.Interfaces())
			}
		})
	}
}

// TestLabConcurrentRequestsCorrelate sends 20 different requests at once;
// each is followed across every leg with the same byte counts, which fails
// if a pod connection were matched to the wrong request.
func TestLabConcurrentRequestsCorrelate(t *testing.T) {
	needRootCmd(t)
	var reqs []string
	for i := 0; i < 20; i++ {
		reqs = append(reqs, fmt.Sprintf("GET /bytes?n=%d", 1000+i*1117))
	}
	ios, out, errOut := testIO()
	for _, run := range [][2]string{{"pftap", "cri-streaming"}, {"kubectl", "cri-streaming"}, {"pftap", "socat"}, {"kubectl", "socat"}} {
		client := run[0] + "/" + run[1]
		err := labRun(&LabRunOptions{IO: ios, Runtime: run[1], App: "builtin", Client: run[0], Requests: reqs, Concurrency: 20, JSON: true})
		if err != nil {
			t.Fatalf("pftap lab: %v\n%s", err, errOut)
		}
		sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
		sc.Buffer(nil, 1<<20)
		hops, tlsLegs := 0, 0
		for sc.Scan() {
			var h struct {
				Kind      string `json:"kind"`
				RequestID string `json:"request_id"`
				FromPod   struct {
					Bytes int64 `json:"bytes"`
					Legs  []struct {
						Leg    string `json:"leg"`
						Bytes  int64  `json:"bytes"`
						Digest string `json:"digest"`
						TLS    bool   `json:"tls"`
					} `json:"legs"`
				} `json:"from_pod"`
			}
			if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
				t.Fatalf("not JSON: %s", sc.Text())
			}
			if h.Kind != "hops" {
				continue
			}
			hops++
			plain, tls := 0, 0
			for _, l := range h.FromPod.Legs {
				if l.TLS {
					tls++
				} else {
					plain++
				}
			}
			// Every plaintext leg, and L2 on the wire placed by its TLS
			// records where one is free in the request's window (with 20
			// requests at once, a neighbour's record can be taken).
			if want := map[bool]int{true: 4, false: 5}[strings.HasSuffix(client, "socat")]; plain != want || tls > 1 {
				t.Errorf("%s: request %s crossed %d plaintext legs and %d TLS legs back, want %d and at most 1", client, h.RequestID, plain, tls, want)
			}
			tlsLegs += tls
			// The response body is 1000+i*1117 bytes plus HTTP headers; every
			// leg must carry the same count (SPDY DATA on L1-L3, TCP on L4 and
			// on the user's connection).
			for _, l := range h.FromPod.Legs {
				if l.TLS {
					continue // no bytes of its own: encrypted
				}
				// The same bytes, in the same order, on every leg.
				if l.Digest == "" || l.Digest != h.FromPod.Legs[0].Digest {
					t.Errorf("%s: request %s: the bytes on %s (%s) differ from those on %s (%s)", client, h.RequestID, l.Leg, l.Digest, h.FromPod.Legs[0].Leg, h.FromPod.Legs[0].Digest)
				}
				if l.Bytes != h.FromPod.Bytes {
					t.Errorf("request %s: %s carried %d bytes, other legs %d: a connection matched to the wrong request", h.RequestID, l.Leg, l.Bytes, h.FromPod.Bytes)
				}
			}
		}
		if hops != 20 {
			t.Errorf("%s: %d requests followed, want 20", client, hops)
		}
		if tlsLegs == 0 {
			t.Errorf("%s: L2 on the wire placed on no request's path", client)
		}
		out.Reset()
	}
}

// BenchmarkLabOneRequest times the whole main job for one request: build
// the lab, tap every leg, port-forward, GET /, tear down, decode, print.
func BenchmarkLabOneRequest(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	for i := 0; i < b.N; i++ {
		ios, _, errOut := testIO()
		if err := labRun(&LabRunOptions{IO: ios, Runtime: "cri-streaming", App: "builtin", Client: "pftap", Requests: []string{"GET /"}, Concurrency: 1}); err != nil {
			b.Fatalf("%v\n%s", err, errOut)
		}
	}
}

var (
	digits    = regexp.MustCompile(`\b[0-9]+\b`)
	durations = regexp.MustCompile(`\b[0-9]+(\.[0-9]+)?(µs|ms|s)\b`)
	tokenPath = regexp.MustCompile(`/portforward/[A-Za-z0-9_-]+`)
)

// TestLabGolden renders `pftap lab` for each runtime and client and compares,
// leg by leg, the sequence of events from the first GET to each request's
// summary with testdata/golden/lab-*.txt, numbers, durations and tokens
// masked (go test -update rewrites them). Within a leg the order does not
// depend on timing; across legs it does, so legs are compared one by one.
func TestLabGolden(t *testing.T) {
	needRootCmd(t)
	// Every era: the current release (1.37: WebSocket to the kubelet),
	// 1.35 (the apiserver tunnels), the skew of a 1.36 apiserver with a
	// 1.35 kubelet, 1.30 (no tunnel: kubectl falls back to SPDY) and the
	// dockershim's socat (1.23).
	for _, run := range []struct{ client, runtime, kubernetes, kubelet string }{
		{"pftap", "cri-streaming", "1.37", ""}, {"kubectl", "cri-streaming", "1.37", ""},
		{"pftap", "cri-streaming", "1.35", ""}, {"kubectl", "cri-streaming", "1.35", ""},
		{"kubectl", "cri-streaming", "1.36", "1.35"}, {"kubectl", "cri-streaming", "1.30", ""},
		{"pftap", "socat", "1.23", ""},
	} {
		era := run.kubernetes
		if run.kubelet != "" {
			era += "-" + run.kubelet
		}
		name := fmt.Sprintf("lab-%s-%s-%s.txt", era, run.runtime, run.client)
		t.Run(name, func(t *testing.T) {
			golden := filepath.Join("../../testdata/golden", name)
			gen := func() string { return labGoldenText(t, run.client, run.runtime, run.kubernetes, run.kubelet) }
			got := gen()
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test ./cmd/pftap -run LabGolden -update)", err)
			}
			if got == string(want) {
				return
			}
			// A whole lab run under a loaded machine can still race at its
			// edges: say how, and judge a second run.
			t.Logf("first run differs from %s:\n%s", golden, lineDiff(string(want), got))
			if got = gen(); got != string(want) {
				t.Errorf("pftap lab differs from %s:\n%s", golden, lineDiff(string(want), got))
			}
		})
	}
}

// labGoldenText runs pftap lab and renders, leg by leg, the events from the
// first GET to each request's summary, numbers, durations and tokens masked.
func labGoldenText(t *testing.T, client, runtime, kubernetes, kubelet string) string {
	t.Helper()
	ios, out, errOut := testIO()
	opts := &LabRunOptions{IO: ios, Runtime: runtime, App: "builtin", Client: client, Requests: []string{"GET /"}, Concurrency: 1, JSON: true}
	opts.era.kubernetes, opts.era.kubelet = kubernetes, kubelet
	if err := opts.era.check(runtime, false); err != nil {
		t.Fatal(err)
	}
	if err := labRun(opts); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	perLeg := map[string][]string{}
	var legs, diags []string
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			Kind, Leg, Dir, Text, Name, Hop string
		}
		json.Unmarshal(sc.Bytes(), &e)
		switch e.Kind {
		case "diagnosis":
			diags = append(diags, e.Name+" at "+e.Hop)
			continue
		case "conn", "close", "goaway", "ping", "hops", "summary", "ws", "spdy", "tcp", "app", "lab", "result", "legs", "aggregate":
			continue
		}
		if strings.Contains(e.Text, "by client: CANCEL") || strings.Contains(e.Text, "stream ends inside a SPDY frame") {
			continue // the client's tidy-up and the teardown race each other
		}
		if _, ok := perLeg[e.Leg]; !ok {
			legs = append(legs, e.Leg)
		}
		txt := tokenPath.ReplaceAllString(e.Text, "/portforward/TOKEN")
		txt = digits.ReplaceAllString(durations.ReplaceAllString(txt, "DURATION"), "N")
		perLeg[e.Leg] = append(perLeg[e.Leg], e.Dir+" "+txt)
	}
	sort.Strings(legs)
	var b strings.Builder
	for _, l := range legs {
		fmt.Fprintf(&b, "== %s\n%s\n", l, strings.Join(perLeg[l], "\n"))
	}
	if len(diags) > 0 {
		fmt.Fprintf(&b, "== diagnosis\n%s\n", strings.Join(diags, "\n"))
	}
	return b.String()
}

// TestLabL4MatchesAppLog checks the correlation against the ground truth:
// for each request, the path seen in its data stream on L1 must be the path
// the app logged for the pod-lo connection that pftap matched to it, for
// both runtimes and both clients.
func TestLabL4MatchesAppLog(t *testing.T) {
	needRootCmd(t)
	var reqs []string
	for i := 0; i < 20; i++ {
		// Same size, and the same first 64 bytes (all pftap compares): only
		// the order tells the connections apart; the path's end tells the
		// test which is which.
		reqs = append(reqs, fmt.Sprintf("GET /bytes?n=5000&pad=%s&i=%d", strings.Repeat("x", 64), i))
	}
	for _, run := range [][2]string{{"pftap", "cri-streaming"}, {"kubectl", "cri-streaming"}, {"pftap", "socat"}, {"kubectl", "socat"}} {
		t.Run(run[0]+"/"+run[1], func(t *testing.T) {
			ios, out, errOut := testIO()
			if err := labRun(&LabRunOptions{IO: ios, Runtime: run[1], App: "builtin", Client: run[0], Requests: reqs, Concurrency: 20, JSON: true}); err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			pathOnL1 := map[string]string{} // request ID → path in its data stream
			connPort := map[int]string{}    // conn → client address, from the conn events
			app := map[string]string{}      // remote address on the pod's lo → path the app served
			l4 := map[string]int{}          // request ID → the L4 connection pftap matched
			re := regexp.MustCompile(`"GET (/bytes\?n=5000&pad=x+&i=\d+) HTTP`)
			sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var e struct {
					Kind, Leg, Text, Remote, Path string
					Conn                          int
					RequestID                     *string `json:"request_id"`
					ToPod                         struct {
						Legs []struct {
							Leg  string
							Conn int
						}
					} `json:"to_pod"`
				}
				json.Unmarshal(sc.Bytes(), &e)
				switch {
				case e.Kind == "data" && strings.HasPrefix(e.Leg, "L1") && e.RequestID != nil:
					if m := re.FindStringSubmatch(e.Text); m != nil {
						pathOnL1[*e.RequestID] = m[1]
					}
				case e.Kind == "conn" && strings.HasPrefix(e.Leg, "L4"):
					// "TCP 127.0.0.1:45604 → 127.0.0.1:80 (...)"
					connPort[e.Conn] = strings.Fields(e.Text)[1]
				case e.Kind == "app":
					app[e.Remote] = e.Path
				case e.Kind == "hops" && e.RequestID != nil:
					for _, l := range e.ToPod.Legs {
						if strings.HasPrefix(l.Leg, "L4") {
							l4[*e.RequestID] = l.Conn
						}
					}
				}
			}
			if len(l4) != 20 || len(app) != 20 {
				t.Fatalf("%d requests matched to a pod connection, the app logged %d", len(l4), len(app))
			}
			for id, conn := range l4 {
				if got, want := app[connPort[conn]], pathOnL1[id]; got != want || want == "" {
					t.Errorf("request %s carried %q on L1, but pftap matched it to the pod connection %s for which the app logged %q", id, want, connPort[conn], got)
				}
			}
		})
	}
}

// TestLabRecordingInWireshark: each leg of a `pftap lab -w` file reads
// correctly in tshark on its own and beside the others: the TLS leg on the
// wire is dissected as TLS, and no leg is taken for retransmissions of
// another (the plaintext below TLS carries the same connection's
// addresses, IPv4-mapped).
func TestLabRecordingInWireshark(t *testing.T) {
	needRootCmd(t)
	testenv.NeedTool(t, "tshark", "tshark")
	for _, client := range []string{"pftap", "kubectl"} {
		t.Run(client, func(t *testing.T) {
			ios, out, errOut := testIO()
			pcap := filepath.Join(t.TempDir(), "lab.pcapng")
			if err := labRun(&LabRunOptions{IO: ios, Runtime: "cri-streaming", App: "builtin", Client: client, Requests: []string{"GET /", "GET /bytes?n=200000"},
				Concurrency: 1, Write: pcap, NoColor: true}); err != nil {
				t.Fatalf("pftap lab: %v\n%s", err, errOut)
			}
			count := func(filter string) int {
				b, err := exec.Command("tshark", "-r", pcap, "-Y", filter).Output()
				if err != nil {
					t.Fatalf("tshark -Y %q: %v", filter, err)
				}
				return strings.Count(string(b), "\n")
			}
			// No leg may be taken for another's retransmissions. A leg
			// captured from the kernel can carry real ones on a loaded
			// machine: pftap reports those too, in its legs table (but for
			// a FIN sent again after the connection closed, which it does
			// not count).
			bad := "tcp.analysis.retransmission || tcp.analysis.out_of_order || tcp.analysis.lost_segment || tcp.analysis.duplicate_ack"
			which, err := exec.Command("tshark", "-r", pcap, "-Y", bad, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.number", "-e", "_ws.expert.message").Output()
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(which)), "\n") {
				name, _, ok := strings.Cut(line, "\t")
				if !ok {
					continue
				}
				row := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(name) + `\s+\d+ packets.*$`).FindString(out.String())
				synthesized := strings.HasPrefix(name, "user→") || name == "L1 client→apiserver" || name == "L2 apiserver→kubelet"
				finAgain := strings.Contains(line, "Connection finish (FIN)")
				if synthesized || !(strings.Contains(row, "retransmitted") || finAgain) {
					t.Errorf("tshark flags a packet pftap does not count as retransmitted: %s\n(legs table: %q)", line, row)
				}
			}
			ifs := map[string]int{}
			b, _ := exec.Command("tshark", "-r", pcap, "-T", "fields", "-e", "frame.interface_id", "-e", "frame.interface_name").Output()
			for _, l := range strings.Split(string(b), "\n") {
				if id, name, ok := strings.Cut(l, "\t"); ok {
					n := 0
					fmt.Sscan(id, &n)
					ifs[name] = n
				}
			}
			wire, ok := ifs["L2 on the wire (TLS)"]
			if !ok {
				t.Fatalf("no wire leg among %v", ifs)
			}
			if n := count(fmt.Sprintf("frame.interface_id==%d && tls.record", wire)); n < 10 {
				t.Errorf("the wire leg has %d TLS records in tshark", n)
			}
			// The current release's chain: the client's WebSocket goes on to
			// the kubelet (one GET upgrade on L2, its frames WebSocket), and
			// the kubelet's SPDY upgrade to the runtime is the POST on L3.
			l2 := ifs["L2 apiserver→kubelet"]
			if n := count(fmt.Sprintf("frame.interface_id==%d && http.request.method==\"GET\" && http.request.uri contains \"/portForward/\"", l2)); n != 1 {
				t.Errorf("the plaintext L2 leg shows %d WebSocket upgrades (GET) in tshark", n)
			}
			if n := count(fmt.Sprintf("frame.interface_id==%d && websocket", l2)); n < 5 {
				t.Errorf("the plaintext L2 leg shows %d WebSocket frames in tshark", n)
			}
			if n := count(fmt.Sprintf("frame.interface_id==%d && http.request.method==\"POST\"", ifs["L3 kubelet→runtime"])); n != 1 {
				t.Errorf("L3 shows %d SPDY upgrades (POST) in tshark", n)
			}
			if !strings.Contains(out.String(), "L2 apiserver→kubelet    TCP 10.250.") {
				t.Errorf("pftap shows the plaintext leg's addresses other than as IPv4:\n%s", out)
			}
			// The filter the legs' descriptions give finds a host on the
			// wire and below TLS: the kubelet's address on L2 both ways.
			kubelet := regexp.MustCompile(`L2 apiserver→kubelet    TCP \S+ → (10\.250\.\d+\.\d+):10250`).FindStringSubmatch(out.String())
			if kubelet == nil {
				t.Fatalf("no kubelet address in:\n%s", out)
			}
			both := fmt.Sprintf("ip.addr == %s || ipv6.addr == ::ffff:%s", kubelet[1], kubelet[1])
			if count(fmt.Sprintf("frame.interface_id==%d && (%s)", l2, both)) == 0 || count(fmt.Sprintf("frame.interface_id==%d && (%s)", wire, both)) == 0 {
				t.Errorf("%q does not find the kubelet on both L2 legs", both)
			}
			// Nothing but the legs' TCP: no frame the ring took before
			// its filter was attached.
			if n := count("not tcp"); n != 0 {
				t.Errorf("%d frames that are not TCP in the recording", n)
			}
		})
	}
}

// TestLabSaysWhatRan: lab --json begins with what ran (the versions, the
// era, the runtime, the app, the client with its version and binary) and
// ends with each request's result and every leg's drops; the text header
// names the kubectl that ran and its version; a --kubectl that is not
// there is refused before anything runs.
func TestLabSaysWhatRan(t *testing.T) {
	needRootCmd(t)
	ios, out, errOut := testIO()
	if err := labRun(&LabRunOptions{IO: ios, Runtime: "cri-streaming", App: "builtin", Client: "kubectl", Requests: []string{"GET /"}, Concurrency: 1, JSON: true}); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var first struct {
		Kind, Kubernetes, Kubelet, Runtime, App, Client, Era string
		ClientVersion                                        string `json:"client_version"`
		ClientPath                                           string `json:"client_path"`
	}
	json.Unmarshal([]byte(lines[0]), &first)
	if first.Kind != "lab" || !strings.HasPrefix(first.Kubernetes, "v1.") || first.Runtime != "cri-streaming" || first.App != "builtin" ||
		first.Client != "kubectl" || !strings.HasPrefix(first.ClientVersion, "v1.") || first.ClientPath != kubectl.Path || first.Era == "" {
		t.Errorf("first line: %+v", first)
	}
	var results, legs int
	for _, l := range lines {
		if strings.Contains(l, `"kind":"result"`) && strings.Contains(l, `"status":"200 OK"`) {
			results++
		}
		if strings.Contains(l, `"kind":"legs"`) && strings.Contains(l, `"drops":0`) && strings.Contains(l, `"leg_id":"L4"`) {
			legs++
		}
	}
	if results != 1 || legs != 1 {
		t.Errorf("%d result objects, %d legs objects", results, legs)
	}
	ios, text, _ := testIO()
	if err := labRun(&LabRunOptions{IO: ios, Runtime: "cri-streaming", App: "builtin", Client: "kubectl", Requests: []string{"GET /"}, Concurrency: 1, NoColor: true}); err != nil {
		t.Fatal(err)
	}
	if want := "kubectl port-forward (kubectl " + kubectl.Version(kubectl.Path) + ", " + kubectl.Path + ")"; !strings.Contains(text.String(), want) {
		t.Errorf("the header does not say %q:\n%s", want, text.String()[:min(400, text.Len())])
	}
	ios, _, _ = testIO()
	cmd := newLabCmd(ios)
	cmd.SetArgs([]string{"--client", "kubectl", "--kubectl", "/nonexistent/kubectl"})
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "/nonexistent/kubectl, which is not an executable") {
		t.Errorf("a missing --kubectl: %v", err)
	}
}

// TestHeadersSayWhatRan: what the header and the 101s say follows the
// traffic: the dockershim's L2 101 is the kubelet's (there is no runtime
// below it), a SPDY client's header does not describe the WebSocket path
// it does not take, and trace's L1 101 is attributed as the cluster's path
// says (a 1.37 node that declares ExtendWebSocketsToKubelet: the
// kubelet's).
func TestHeadersSayWhatRan(t *testing.T) {
	needRootCmd(t)
	ios, out, errOut := testIO()
	if err := labRun(&LabRunOptions{IO: ios, Runtime: "socat", App: "builtin", Client: "pftap", Requests: []string{"GET /"}, Concurrency: 1, JSON: true}); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	if !regexp.MustCompile(`"kind":"http-response".*"leg_id":"L2".*"status":101.*"upgrade_by":"kubelet"`).MatchString(out.String()) {
		t.Errorf("socat: the L2 101 is not the kubelet's:\n%s", out)
	}
	ios, text, _ := testIO()
	if err := labRun(&LabRunOptions{IO: ios, Runtime: "cri-streaming", App: "builtin", Client: "pftap", SPDY: true, Requests: []string{"GET /"}, Concurrency: 1, NoColor: true}); err != nil {
		t.Fatal(err)
	}
	head := strings.SplitN(text.String(), "\n", 3)[1]
	if !strings.Contains(head, "a client that speaks SPDY/3.1") || strings.HasPrefix(strings.TrimSpace(head), "Kubernetes 1.37: the node declares") {
		t.Errorf("--spdy's era line: %s", head)
	}
}

// TestREADMELabSample: every line of the README's `pftap lab` sample is a
// line a real default run prints, times, ports, addresses and the lab's
// numbers aside: the sample says what pftap says today.
func TestREADMELabSample(t *testing.T) {
	needRootCmd(t)
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "summaries at the end):\n\n```\n")
	if i < 0 {
		t.Fatal("no lab sample in the README")
	}
	sample := s[i+len("summaries at the end):\n\n```\n"):]
	sample = sample[:strings.Index(sample, "\n```")]
	ios, out, errOut := testIO()
	if err := labRun(&LabRunOptions{IO: ios, Runtime: "cri-streaming", App: "builtin", Client: "pftap", Requests: []string{"GET /"}, Concurrency: 1, NoColor: true}); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	durs := regexp.MustCompile(`-?[0-9]+(\.[0-9]+)?(ns|µs|ms|s)\b`)
	anyDigits := regexp.MustCompile(`[0-9]+`)
	norm := func(l string) string {
		l = tokenPath.ReplaceAllString(l, "/portforward/TOKEN")
		l = durs.ReplaceAllString(l, "T")
		l = anyDigits.ReplaceAllString(l, "N")
		return strings.Join(strings.Fields(l), " ")
	}
	have := map[string]bool{}
	for _, l := range strings.Split(out.String(), "\n") {
		have[norm(l)] = true
	}
	for _, l := range strings.Split(sample, "\n") {
		if strings.TrimSpace(l) == "..." {
			continue
		}
		if !have[norm(l)] {
			t.Errorf("the README's sample line is not what pftap lab prints:\n%s\n(run:\n%s)", l, out)
			break
		}
	}
}
