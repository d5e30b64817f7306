package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExitCodes(t *testing.T) {
	full, err := os.ReadFile(filepath.Join(recordings, "spdy-get.pcapng"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	truncated := filepath.Join(dir, "cut.pcapng")
	os.WriteFile(truncated, full[:len(full)/2], 0o600)
	// A pcap of link type 147 (USER0), which pftap does not read.
	link147 := filepath.Join(dir, "user0.pcap")
	os.WriteFile(link147, append([]byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 147, 0, 0, 0,
		1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0}, 1, 2, 3, 4), 0o600)
	garbage := filepath.Join(dir, "garbage.pcap")
	os.WriteFile(garbage, []byte("GET / HTTP/1.1\r\n\r\n"), 0o600)

	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		stderr   string
		stdoutHe string // a line the output must still have
	}{
		{"ok", []string{"decode", filepath.Join(recordings, "spdy-get.pcapng")}, exitOK, "", "summary:"},
		{"truncated", []string{"decode", truncated}, exitError, "truncated capture", "101 Switching Protocols"},
		{"garbage", []string{"decode", garbage}, exitError, "not a pcap or pcapng file", ""},
		{"missing file", []string{"decode", filepath.Join(dir, "nope.pcap")}, exitError, "no such file", ""},
		{"unknown link type", []string{"decode", link147}, exitError, "all 1 frames are of link type 147", ""},
		{"replay unknown link type", []string{"replay", link147}, exitError, "all 1 frames are of link type 147", ""},
		{"no file", []string{"decode"}, exitUsage, "exactly one capture file", ""},
		{"bad flag", []string{"decode", "--nope", "x"}, exitUsage, "unknown flag: --nope", ""},
		{"unknown command", []string{"decoed"}, exitUsage, "unknown command", ""},
		{"version", []string{"version"}, exitOK, "", "pftap "},
		{"replay", []string{"replay", filepath.Join(replays, "spdy-get.pcapng")}, exitOK, "", "why tcpdump on the pod's eth0 shows nothing"},
		{"replay other capture", []string{"replay", filepath.Join(recordings, "spdy-get.pcapng")}, exitOK, "", "per-hop latency"},
		{"replay truncated", []string{"replay", truncated}, exitError, "truncated capture", "101 Switching Protocols"},
		{"replay garbage", []string{"replay", garbage}, exitError, "not a pcap or pcapng file", ""},
		{"replay no file", []string{"replay"}, exitUsage, "exactly one recording", ""},
		{"replay strict without serve", []string{"replay", "--strict", truncated}, exitUsage, "go with --serve", ""},
		{"replay serve json", []string{"replay", "--serve", "--json", truncated}, exitUsage, "--serve does not render", ""},
		{"replay serve garbage", []string{"replay", "--serve", garbage}, exitError, "not a pcap or pcapng file", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ios, out, errOut := testIO()
			code := run(tc.args, ios)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.code, errOut)
			}
			if tc.stderr != "" {
				first := strings.SplitN(errOut.String(), "\n", 2)[0]
				if !strings.HasPrefix(first, "pftap: ") || !strings.Contains(first, tc.stderr) {
					t.Errorf("first stderr line %q, want it to say %q", first, tc.stderr)
				}
			}
			if tc.code == exitError && strings.Count(strings.TrimSpace(errOut.String()), "\n") != 0 {
				t.Errorf("a runtime error must be one line, got:\n%s", errOut)
			}
			if tc.stdoutHe != "" && !strings.Contains(out.String(), tc.stdoutHe) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdoutHe, out)
			}
		})
	}
}

func TestDecodeFlagsParse(t *testing.T) {
	ios, _, _ := testIO()
	var got *DecodeOptions
	cmd := newDecodeCmd(ios, func(o *DecodeOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"-vv", "--json", "--show-secrets", "f.pcap"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Verbosity != 2 || !got.JSON || !got.ShowSecrets || got.File != "f.pcap" {
		t.Errorf("options %+v", got)
	}
}

func TestStdinAndColour(t *testing.T) {
	f, err := os.Open(filepath.Join(recordings, "spdy-refused.pcapng"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ios, out, _ := testIO()
	ios.In = f
	ios.OutTTY = true
	if code := run([]string{"decode", "-"}, ios); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "\x1b[31m") {
		t.Error("no colour on a terminal")
	}
	ios2, out2, _ := testIO()
	ios2.In, _ = os.Open(filepath.Join(recordings, "spdy-refused.pcapng"))
	ios2.OutTTY = true
	run([]string{"decode", "--no-color", "-"}, ios2)
	if strings.Contains(out2.String(), "\x1b[") {
		t.Error("colour despite --no-color")
	}
}

// TestPluginExamples: as kubectl's plugin every example says `kubectl
// pftap`, once, wherever pftap is run in it.
func TestPluginExamples(t *testing.T) {
	ios, out, _ := testIO()
	ios.plugin = true
	for _, args := range [][]string{{"trace", "--help"}, {"lab", "--help"}, {"agent", "--help"}, {"decode", "--help"}} {
		out.Reset()
		run(args, ios)
		ex := out.String()
		if i := strings.Index(ex, "Examples:"); i >= 0 {
			ex = ex[i:]
		}
		if strings.Contains(ex, "kubectl kubectl") || strings.Contains(ex, "\n  pftap ") || strings.Contains(ex, "sudo pftap") {
			t.Errorf("%v: examples as a plugin:\n%s", args, ex)
		}
		if !strings.Contains(ex, "kubectl pftap") {
			t.Errorf("%v: no example says kubectl pftap:\n%s", args, ex)
		}
	}
}
