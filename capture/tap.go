package capture

import (
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"
)

// TapSink receives the frames a Tap makes. frame is only valid during the
// call.
type TapSink func(ts time.Time, frame []byte)

// Tap wraps a connection (a plain TCP one, or the plaintext side of a TLS
// connection) and records every read and write as well-formed
// Ethernet/IPv4/TCP frames with the connection's real addresses and
// consistent sequence numbers: a handshake when it is made, one or more
// data segments per write or read, and FINs when either side closes. The
// decoder, tshark and Wireshark read the result as the TCP stream it was.
type Tap struct {
	net.Conn
	sink TapSink
	mu   sync.Mutex
	addr [2]netip.AddrPort // [0] client (local), [1] server (remote)
	seq  [2]uint32
	fin  [2]bool
	buf  []byte
	now  func() time.Time
}

// NewTap wraps conn, whose local end is the client, and records the
// handshake at once.
func NewTap(conn net.Conn, sink TapSink) *Tap {
	t := &Tap{Conn: conn, sink: sink, now: time.Now}
	t.addr[0] = addrPort(conn.LocalAddr(), "127.0.0.1:1")
	t.addr[1] = addrPort(conn.RemoteAddr(), "127.0.0.1:2")
	t.seq[0], t.seq[1] = rand.Uint32(), rand.Uint32()
	t.mu.Lock()
	ts := t.now()
	t.emit(ts, 0, FlagSYN, nil)
	t.emit(ts, 1, FlagSYN|FlagACK, nil)
	t.emit(ts, 0, FlagACK, nil)
	t.mu.Unlock()
	return t
}

func addrPort(a net.Addr, fallback string) netip.AddrPort {
	if a != nil {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap
		}
	}
	return netip.MustParseAddrPort(fallback)
}

// emit records one segment from side dir (0 client, 1 server). Caller
// holds mu.
func (t *Tap) emit(ts time.Time, dir int, flags uint8, payload []byte) {
	ack := t.seq[1-dir]
	if flags&FlagSYN != 0 && dir == 0 {
		ack = 0
	}
	t.buf = AppendTCPFrame(t.buf[:0], t.addr[dir], t.addr[1-dir], t.seq[dir], ack, flags, payload)
	t.sink(ts, t.buf)
	t.seq[dir] += uint32(len(payload))
	if flags&(FlagSYN|FlagFIN) != 0 {
		t.seq[dir]++
	}
}

func (t *Tap) record(dir int, b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fin[dir] {
		return
	}
	ts := t.now()
	for len(b) > 0 {
		n := min(len(b), MaxSegment)
		t.emit(ts, dir, FlagPSH|FlagACK, b[:n])
		b = b[n:]
	}
}

func (t *Tap) finish(dir int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fin[dir] {
		return
	}
	t.fin[dir] = true
	ts := t.now()
	t.emit(ts, dir, FlagFIN|FlagACK, nil)
	t.emit(ts, 1-dir, FlagACK, nil)
}

// Read reads from the server and records what was read.
func (t *Tap) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	if n > 0 {
		t.record(1, p[:n])
	}
	if err == io.EOF {
		t.finish(1)
	}
	return n, err
}

// Write writes to the server and records what was written.
func (t *Tap) Write(p []byte) (int, error) {
	n, err := t.Conn.Write(p)
	if n > 0 {
		t.record(0, p[:n])
	}
	return n, err
}

// CloseWrite half-closes when the wrapped connection can.
func (t *Tap) CloseWrite() error {
	type closeWriter interface{ CloseWrite() error }
	var err error
	if cw, ok := t.Conn.(closeWriter); ok {
		err = cw.CloseWrite()
	}
	t.finish(0)
	return err
}

// Close closes the connection and records the client's FIN.
func (t *Tap) Close() error {
	err := t.Conn.Close()
	t.finish(0)
	return err
}
