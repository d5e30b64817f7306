package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pftap/pftap/internal/synth"
	"github.com/pftap/pftap/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const (
	recordings = "../../testdata/recordings"
	replays    = "../../testdata/replay"
)

func recordingFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(recordings, "*.pcapng"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recordings in %s: %v", recordings, err)
	}
	return files
}

func testIO() (*IOStreams, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	return &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, &out, &errOut
}

// TestDecodeGolden decodes every recording at verbosity 0 and 1 and compares
// the text with testdata/golden (times masked). go test -update rewrites them.
func TestDecodeGolden(t *testing.T) {
	for _, f := range recordingFiles(t) {
		name := strings.TrimSuffix(filepath.Base(f), ".pcapng")
		for _, v := range []int{0, 1} {
			golden := filepath.Join("../../testdata/golden", name+map[int]string{0: ".txt", 1: ".v.txt"}[v])
			t.Run(filepath.Base(golden), func(t *testing.T) {
				ios, out, _ := testIO()
				err := decodeRun(&DecodeOptions{IO: ios, File: f, Verbosity: v, MaskTimes: true})
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				// Paths differ between machines; the file name does not.
				got := out.Bytes()
				if *update {
					os.MkdirAll(filepath.Dir(golden), 0o755)
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./cmd/pftap -run Golden -update)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("output differs from %s (go test -update rewrites it):\n%s", golden, lineDiff(string(want), string(got)))
				}
			})
		}
	}
}

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, wl, gl)
			if b.Len() > 2000 {
				break
			}
		}
	}
	return b.String()
}

func decodeJSON(t *testing.T, file string, verbosity int) []map[string]any {
	t.Helper()
	ios, out, _ := testIO()
	if err := decodeRun(&DecodeOptions{IO: ios, File: file, Verbosity: verbosity, JSON: true}); err != nil {
		t.Fatalf("decode: %v", err)
	}
	var objs []map[string]any
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", len(objs)+1, err, sc.Text())
		}
		objs = append(objs, m)
	}
	return objs
}

// TestDecodeJSONContract checks the fields docs/json.md promises.
func TestDecodeJSONContract(t *testing.T) {
	objs := decodeJSON(t, filepath.Join(recordings, "spdy-refused.pcapng"), 1)
	var spdyFrames, requests, diagnoses int
	for i, o := range objs {
		if o["kind"] == "summary" {
			if i != len(objs)-1 {
				t.Error("summary is not the last object")
			}
			continue
		}
		if o["kind"] == "diagnosis" {
			diagnoses++
			ev, _ := o["evidence"].([]any)
			if o["name"] != "refused" || o["request_id"] != "0" || len(ev) == 0 || o["ts"] == nil || o["text"] == "" {
				t.Errorf("diagnosis object: %v", o)
			}
			continue
		}
		if _, ok := o["ts"].(string); !ok {
			t.Errorf("object %d has no ts: %v", i, o)
		}
		if _, ok := o["conn"].(float64); !ok {
			t.Errorf("object %d has no conn: %v", i, o)
		}
		switch o["kind"] {
		case "spdy":
			spdyFrames++
			for _, k := range []string{"type", "stream", "length", "flags"} {
				if _, ok := o[k]; !ok {
					t.Errorf("spdy object without %q: %v", k, o)
				}
			}
			if o["type"] == "SYN_STREAM" {
				h, ok := o["headers"].(map[string]any)
				if !ok || h["streamtype"] == nil || h["port"] != "81" {
					t.Errorf("SYN_STREAM headers: %v", o["headers"])
				}
			}
		case "request":
			requests++
			for _, k := range []string{"request_id", "port", "bytes_to_pod", "bytes_from_pod", "error"} {
				if _, ok := o[k]; !ok {
					t.Errorf("request object without %q: %v", k, o)
				}
			}
			if !strings.Contains(o["error"].(string), "error forwarding port 81") {
				t.Errorf("request error = %q", o["error"])
			}
			if o["port"].(float64) != 81 || o["request_id"] != "0" {
				t.Errorf("request = %v", o)
			}
		}
	}
	if spdyFrames == 0 || requests != 3 || diagnoses != 1 {
		t.Errorf("%d spdy frames, %d requests, %d diagnoses (want >0, 3: one per SPDY leg, L1 to L3, and 1)", spdyFrames, requests, diagnoses)
	}
}

// TestBulkBytesExact checks that the 1 MiB transfer is counted to the byte
// on every SPDY leg (L1 to L3): 1 MiB of body plus the response header.
func TestBulkBytesExact(t *testing.T) {
	objs := decodeJSON(t, filepath.Join(recordings, "spdy-bulk-1mib.pcapng"), 0)
	var n int
	for _, o := range objs {
		if o["kind"] != "request" {
			continue
		}
		n++
		from := int64(o["bytes_from_pod"].(float64))
		if from < 1<<20 || from > 1<<20+512 || o["error"] != "" {
			t.Errorf("request %v: %d bytes from pod", o["request_id"], from)
		}
	}
	if n != 3 {
		t.Errorf("%d requests, want 3 (one per SPDY leg)", n)
	}
}

// TestTsharkOracle compares the SPDY frames (type, stream, length) and the
// WebSocket frames (opcode, length) of every recording with what tshark's
// dissectors report for the same connections.
func TestTsharkOracle(t *testing.T) {
	testenv.NeedTool(t, "tshark", "tshark")
	for _, f := range recordingFiles(t) {
		if strings.Contains(f, "drops") {
			continue // tshark and pftap treat lost segments differently
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			theirs := tsharkFrames(t, f)
			ours := map[int][]string{}
			for _, o := range decodeJSON(t, f, 2) {
				conn := int(num(o["conn"]))
				switch o["kind"] {
				case "spdy":
					if o["type"] == "TLS" {
						continue
					}
					ours[conn] = append(ours[conn], fmt.Sprintf("spdy %s %d %d", o["type"], int(num(o["stream"])), int(num(o["length"]))))
				case "ws", "ping":
					if o["type"] != nil && o["offset"] != nil && isWSOpcode(o["type"].(string)) {
						ours[conn] = append(ours[conn], fmt.Sprintf("ws %s %d", o["type"], int(num(o["length"]))))
					}
				}
			}
			compared := 0
			for conn, want := range theirs {
				got := ours[conn]
				// tshark does not look inside WebSocket messages: compare
				// only frames of the kinds it reported for the connection.
				got = filterKinds(got, want)
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("conn %d: tshark and pftap differ:\n%s", conn, lineDiff(strings.Join(want, "\n"), strings.Join(got, "\n")))
				}
				compared += len(want)
			}
			if compared == 0 {
				t.Error("tshark reported no SPDY or WebSocket frames")
			}
		})
	}
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

func isWSOpcode(s string) bool {
	switch s {
	case "continuation", "text", "binary", "close", "ping", "pong":
		return true
	}
	return false
}

func filterKinds(got, want []string) []string {
	kinds := map[string]bool{}
	for _, w := range want {
		kinds[strings.Fields(w)[0]] = true
	}
	var out []string
	for _, g := range got {
		if kinds[strings.Fields(g)[0]] {
			out = append(out, g)
		}
	}
	return out
}

var spdyTypeNames = map[string]string{"1": "SYN_STREAM", "2": "SYN_REPLY", "3": "RST_STREAM", "4": "SETTINGS", "6": "PING", "7": "GOAWAY", "8": "HEADERS", "9": "WINDOW_UPDATE"}
var wsOpcodeNames = map[string]string{"0": "continuation", "1": "text", "2": "binary", "8": "close", "9": "ping", "10": "pong"}

// tsharkFrames returns, per connection (tcp.stream + 1, which is pftap's
// numbering too), the SPDY and WebSocket frames tshark dissects.
func tsharkFrames(t *testing.T, file string) map[int][]string {
	cmd := exec.Command("tshark", "-n", "-r", file, "-Y", "spdy or websocket", "-T", "fields",
		"-E", "occurrence=a", "-E", "aggregator=|",
		"-e", "tcp.stream", "-e", "spdy.control_bit", "-e", "spdy.type", "-e", "spdy.streamid", "-e", "spdy.length",
		"-e", "websocket.opcode", "-e", "websocket.payload_length", "-e", "websocket.payload_length_ext_16", "-e", "websocket.payload_length_ext_64")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	res := map[int][]string{}
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 9 {
			continue
		}
		stream, _ := strconv.Atoi(f[0])
		conn := stream + 1
		if f[1] != "" {
			ctl, typ, sid, ln := strings.Split(f[1], "|"), strings.Split(f[2], "|"), strings.Split(f[3], "|"), strings.Split(f[4], "|")
			ti := 0
			for i := range ctl {
				name := "DATA"
				if ctl[i] == "1" {
					name = spdyTypeNames[typ[ti]]
					ti++
				}
				sidv := "0"
				if i < len(sid) {
					sidv = sid[i]
				}
				if name == "PING" || name == "SETTINGS" || name == "GOAWAY" {
					sidv = "0"
				}
				res[conn] = append(res[conn], fmt.Sprintf("spdy %s %s %s", name, sidv, ln[i]))
			}
		}
		if f[5] != "" {
			// The 7-bit length says 126 or 127 when an extended length
			// follows; those come in their own fields, in order.
			ops, lens := strings.Split(f[5], "|"), strings.Split(f[6], "|")
			ext16, ext64 := strings.Split(f[7], "|"), strings.Split(f[8], "|")
			for i := range ops {
				l := lens[i]
				switch l {
				case "126":
					l, ext16 = ext16[0], ext16[1:]
				case "127":
					l, ext64 = ext64[0], ext64[1:]
				}
				res[conn] = append(res[conn], fmt.Sprintf("ws %s %s", wsOpcodeNames[ops[i]], l))
			}
		}
	}
	return res
}

// closeOnWrite is an output that stands for a stop signal once the
// decoder's first buffered output reaches it.
type closeOnWrite struct {
	bytes.Buffer
	stop chan struct{}
	once bool
}

func (w *closeOnWrite) Write(p []byte) (int, error) {
	if !w.once {
		w.once = true
		close(w.stop)
	}
	return w.Buffer.Write(p)
}

// TestDecodeInterrupted: a stop signal in the middle of a big file ends
// its reading; what was decoded is printed, with the summary of it, and
// the command says it was interrupted (a non-zero exit).
func TestDecodeInterrupted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bulk.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	total, err := synth.Write(f, synth.Config{Bytes: 64 << 20})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	out := &closeOnWrite{stop: make(chan struct{})}
	ios := &IOStreams{In: strings.NewReader(""), Out: out, ErrOut: io.Discard}
	err = decodeRun(&DecodeOptions{IO: ios, File: path, Verbosity: 1, JSON: true, Stop: out.stop})
	if err == nil || !strings.Contains(err.Error(), "interrupted after") {
		t.Fatalf("err %v, want an interruption", err)
	}
	var sum struct {
		Kind    string
		Packets int
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); jerr != nil || sum.Kind != "summary" {
		t.Fatalf("last line %q is not the summary (%v)", lines[len(lines)-1], jerr)
	}
	if sum.Packets == 0 || sum.Packets >= total || !strings.Contains(err.Error(), fmt.Sprintf("after %d packets", sum.Packets)) {
		t.Fatalf("summary of %d packets of %d; error %v", sum.Packets, total, err)
	}
}
