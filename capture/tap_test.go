package capture

import (
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pftap/pftap/internal/tcpframe"
)

// tcpFlags is the flags byte of a frame from a Tap (Ethernet, IPv4, TCP).
func tcpFlags(frame []byte) byte { return frame[14+20+13] }

// TestTapRecordsResets: a peer's reset, read as ECONNRESET, and this end's
// Reset are recorded as an RST from the side that sent it, not as a FIN.
func TestTapRecordsResets(t *testing.T) {
	for _, who := range []string{"peer", "this end"} {
		t.Run(who, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					accepted <- c
				}
			}()
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var flags []byte
			rstFrom := -1
			clientPort := uint16(raw.LocalAddr().(*net.TCPAddr).Port)
			tap := NewTap(raw, func(_ time.Time, frame []byte) {
				mu.Lock()
				flags = append(flags, tcpFlags(frame))
				if tcpFlags(frame)&tcpframe.FlagRST != 0 {
					rstFrom = 1
					if binary.BigEndian.Uint16(frame[34:]) == clientPort {
						rstFrom = 0
					}
				}
				mu.Unlock()
			})
			server := <-accepted
			defer server.Close()
			wantFrom := 1 // the peer, the server
			if who == "peer" {
				server.(*net.TCPConn).SetLinger(0)
				server.Close()
				tap.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := tap.Read(make([]byte, 10)); err == nil {
					t.Fatal("read after the peer's reset did not fail")
				}
			} else {
				tap.Reset()
				wantFrom = 0
			}
			tap.Close()
			mu.Lock()
			defer mu.Unlock()
			var rst, fin int
			for _, f := range flags {
				if f&tcpframe.FlagRST != 0 {
					rst++
				}
				if f&tcpframe.FlagFIN != 0 {
					fin++
				}
			}
			if rst != 1 || fin != 0 || rstFrom != wantFrom {
				t.Fatalf("recorded %d RSTs and %d FINs (flags %x), want one RST from side %d", rst, fin, flags, wantFrom)
			}
		})
	}
}
