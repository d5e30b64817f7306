//go:build linux

package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/pftap/pftap/internal/testenv"
)

// TestReplayRendersAsLab: `pftap replay` of a `pftap lab -w` recording
// prints exactly what `pftap lab` printed live, as text and as JSON.
func TestReplayRendersAsLab(t *testing.T) {
	needRootCmd(t)
	for _, tc := range []struct {
		client string
		json   bool
		ext    string // the recording's name ends so: compressed or not
	}{{"kubectl", false, ".pcapng"}, {"pftap", true, ".pcapng"}, {"kubectl", false, ".pcapng.gz"}, {"pftap", false, ".pcapng.zst"}} {
		t.Run(tc.client+tc.ext, func(t *testing.T) {
			ios, live, errOut := testIO()
			pcap := filepath.Join(t.TempDir(), "lab"+tc.ext)
			err := labRun(&LabRunOptions{IO: ios, Runtime: "cri-streaming", App: "builtin", Client: tc.client,
				Requests: []string{"GET /", "GET /bytes?n=100000"}, Concurrency: 2, Write: pcap, NoColor: true, JSON: tc.json})
			if err != nil {
				t.Fatalf("pftap lab: %v\n%s", err, errOut)
			}
			ios2, replayed, errOut2 := testIO()
			if err := replayRender(&ReplayOptions{IO: ios2, File: pcap, NoColor: true, JSON: tc.json}); err != nil {
				t.Fatalf("pftap replay: %v\n%s", err, errOut2)
			}
			// The file carries the decoded summaries as packet comments
			// (Wireshark shows them) and no credential.
			raw, err := os.ReadFile(pcap)
			if err != nil {
				t.Fatal(err)
			}
			if tc.ext != ".pcapng" {
				raw = decompressed(t, pcap)
			}
			if regexp.MustCompile(`Authorization: Bearer [^x\r]`).Match(raw) {
				t.Error("a bearer token is in the recording")
			}
			// tshark opens the file as written, compressed or not (Debian
			// 12's tshark 4.0 reads zstd too).
			tshark := testenv.NeedTool(t, "tshark", "tshark")
			comments, err := exec.Command(tshark, "-r", pcap, "-T", "fields", "-e", "frame.comment").Output()
			if err != nil {
				t.Fatalf("tshark: %v", err)
			}
			for _, want := range []string{"101 Switching Protocols", "open data stream", "request 0 port 80"} {
				if !strings.Contains(string(comments), want) {
					t.Errorf("no packet comment says %q", want)
				}
			}
			if live.String() != replayed.String() {
				t.Errorf("pftap replay differs from what pftap lab printed\n--- lab\n%s\n--- replay\n%s", live, replayed)
			}
		})
	}
}

// decompressed is a .gz or .zst recording's pcapng.
func decompressed(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader
	if strings.HasSuffix(path, ".gz") {
		g, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r = g
	} else {
		z, err := zstd.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		defer z.Close()
		r = z
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}
