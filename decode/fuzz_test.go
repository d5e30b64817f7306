package decode

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecodeCapture runs the whole file-to-events path on arbitrary bytes,
// seeded with a real recording: never a panic, every event encodes as JSON.
func FuzzDecodeCapture(f *testing.F) {
	f.Add(readRecording(f, "spdy-get.pcapng"))
	f.Add(readRecording(f, "websocket-get.pcapng")[:4096])
	f.Fuzz(func(t *testing.T, b []byte) {
		DecodeCapture(bytes.NewReader(b), Options{Verbosity: 2}, func(e *Event) {
			if _, err := json.Marshal(e); err != nil {
				t.Fatalf("event does not encode: %v", err)
			}
		})
	})
}

// FuzzSession feeds arbitrary bytes as both directions of an upgraded
// SPDY connection and of a WebSocket tunnel.
func FuzzSession(f *testing.F) {
	f.Add([]byte{0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1}, []byte{0, 0, 0, 1, 0, 0, 0, 0}, false)
	f.Add([]byte{0x82, 0x80, 1, 2, 3, 4}, []byte{0x82, 0}, true)
	f.Fuzz(func(t *testing.T, c2s, s2c []byte, ws bool) {
		c := newConv(6443)
		if ws {
			c.send(0, []byte("GET /x HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n\r\n"), 1500)
			c.send(1, []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n\r\n"), 1500)
		} else {
			c.send(0, []byte(spdyUpgradeReq), 1500)
			c.send(1, []byte(spdyUpgradeResp), 1500)
		}
		c.send(0, c2s, 7)
		c.send(1, s2c, 11)
		c.fin()
		decodeConv(t, Options{Verbosity: 2}, c)
	})
}
