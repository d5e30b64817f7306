package main

import (
	"bytes"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/pftap/pftap/decode/packet"
)

func TestCaptureFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"capture", "--netns", "a", "--pod-ip", "10.0.0.1"},
		{"capture", "--pod-ip", "not-an-ip"},
		{"capture", "--count", "-1"},
	} {
		ios, _, errOut := testIO()
		if code := run(args, ios); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitUsage, errOut)
		}
	}
}

// TestCaptureLoopback captures a connection on this namespace's lo, live
// and as pcapng on standard output.
func TestCaptureLoopback(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run as root")
		}
		t.Skip("needs root: opens a packet socket (CAP_NET_RAW)")
	}
	for _, toStdout := range []bool{false, true} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		go func() {
			c, err := l.Accept()
			if err == nil {
				// The answer after the request: the request (with its
				// Authorization) is among the first packets captured.
				c.Read(make([]byte, 512))
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
				c.Close()
			}
		}()
		ios, out, errOut := testIO()
		opts := &CaptureOptions{IO: ios, Interface: "lo", Filter: "tcp port " + strconv.Itoa(port), Count: 6, BufferMiB: 4}
		if toStdout {
			opts.Write = "-"
		}
		opts.Ready = func() {
			go func() {
				c, err := net.Dial("tcp", l.Addr().String())
				if err == nil {
					c.Write([]byte("GET / HTTP/1.1\r\nAuthorization: Bearer s3cr3t-token-abcdef\r\n\r\n"))
					buf := make([]byte, 100)
					c.Read(buf)
					c.Close()
				}
			}()
		}
		if err := captureRun(opts); err != nil {
			t.Fatalf("capture: %v", err)
		}
		l.Close()
		if !strings.Contains(errOut.String(), "6 packets captured on lo") || !strings.Contains(errOut.String(), "0 dropped") {
			t.Errorf("stats line: %s", errOut)
		}
		if !toStdout {
			if !strings.Contains(out.String(), "> 127.0.0.1:"+strconv.Itoa(port)+" [SYN]") {
				t.Errorf("live output:\n%s", out)
			}
			continue
		}
		// Credentials are hidden in what is written, as in every
		// recording of pftap's.
		if !bytes.Contains(out.Bytes(), []byte("Authorization: Bearer ")) || bytes.Contains(out.Bytes(), []byte("s3cr3t-token")) {
			t.Errorf("the request's Authorization in the written capture: want it there with its token hidden")
		}
		r, err := packet.NewReader(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatalf("stdout is not pcapng: %v", err)
		}
		var p packet.Packet
		n := 0
		for r.Next(&p) == nil {
			n++
		}
		if n != 6 || !strings.HasPrefix(r.Interfaces()[0].Name, "lo") {
			t.Errorf("pcapng on stdout: %d packets, interfaces %+v", n, r.Interfaces())
		}
	}
}
