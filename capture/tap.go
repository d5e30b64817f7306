package capture

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/pftap/pftap/internal/tcpframe"
)

// TapSink receives the frames a Tap makes. frame is only valid during the
// call.
type TapSink func(ts time.Time, frame []byte)

// TapPartsSink receives each frame as its headers and its payload, which
// saves copying the payload; the frame is header followed by payload. Both
// are only valid during the call. The TCP checksum is left zero, which
// saves reading the payload in the forwarded connection's path: call
// tcpframe.FixChecksum on the whole frame before writing it where other tools
// read it.
type TapPartsSink func(ts time.Time, header, payload []byte)

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
	addr [2]netip.AddrPort // [0] client, [1] server
	seq  [2]uint32
	fin  [2]bool
	buf  []byte
	now  func() time.Time
	// parts, when set, is used instead of sink.
	parts TapPartsSink
	// server is set when the wrapped connection's local end is the server.
	server bool
	// mapped writes IPv4 addresses as IPv4-mapped IPv6 (BelowTLS).
	mapped bool
}

// NewTap wraps conn, whose local end is the client, and records the
// handshake at once.
func NewTap(conn net.Conn, sink TapSink) *Tap { return newTap(conn, sink, false, nil) }

// A TapOption changes how a Tap writes its frames.
type TapOption func(*Tap)

// BelowTLS marks a tap of the plaintext of a TLS connection. Its frames
// carry the connection's addresses as IPv4-mapped IPv6 (::ffff:10.0.0.1),
// so that Wireshark, which keys a TCP conversation by addresses and ports
// only, keeps the plaintext apart from the same connection captured on the
// wire in the same file (it would take one for retransmissions of the
// other). pftap's decoder reads the addresses back as IPv4.
func BelowTLS(t *Tap) { t.mapped = true }

// BelowTLSNote ends the description of a leg a BelowTLS tap records: how
// to find its packets in Wireshark.
const BelowTLSNote = "; addresses as IPv4-mapped IPv6, apart from the same connection on the wire (Wireshark: ipv6.addr == ::ffff:10.250.0.5, or ip.addr == 10.250.0.5 || ipv6.addr == ::ffff:10.250.0.5 for both)"

// NewTapParts is NewTap with a sink that takes headers and payload apart.
func NewTapParts(conn net.Conn, sink TapPartsSink, opts ...TapOption) *Tap {
	return newTap(conn, nil, false, sink, opts...)
}

// NewServerTapParts is NewServerTap with a sink that takes headers and
// payload apart.
func NewServerTapParts(conn net.Conn, sink TapPartsSink, opts ...TapOption) *Tap {
	return newTap(conn, nil, true, sink, opts...)
}

// NewServerTap wraps a connection a server accepted (the plaintext of a TLS
// connection, say): reads are the client's bytes, writes the server's.
func NewServerTap(conn net.Conn, sink TapSink) *Tap { return newTap(conn, sink, true, nil) }

func newTap(conn net.Conn, sink TapSink, server bool, parts TapPartsSink, opts ...TapOption) *Tap {
	t := &Tap{Conn: conn, sink: sink, now: time.Now, server: server, parts: parts}
	for _, o := range opts {
		o(t)
	}
	local, remote := addrPort(conn.LocalAddr(), "127.0.0.1:1"), addrPort(conn.RemoteAddr(), "127.0.0.1:2")
	if t.mapped {
		local, remote = mapped(local), mapped(remote)
	}
	t.addr[0], t.addr[1] = local, remote
	if server {
		t.addr[0], t.addr[1] = remote, local
	}
	t.seq[0], t.seq[1] = rand.Uint32(), rand.Uint32()
	t.mu.Lock()
	ts := t.now()
	t.emit(ts, 0, tcpframe.FlagSYN, nil)
	t.emit(ts, 1, tcpframe.FlagSYN|tcpframe.FlagACK, nil)
	t.emit(ts, 0, tcpframe.FlagACK, nil)
	t.mu.Unlock()
	return t
}

func mapped(ap netip.AddrPort) netip.AddrPort {
	if !ap.Addr().Is4() {
		return ap
	}
	return netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
}

func addrPort(a net.Addr, fallback string) netip.AddrPort {
	if a != nil {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
	}
	return netip.MustParseAddrPort(fallback)
}

// emit records one segment from side dir (0 client, 1 server). Caller
// holds mu.
func (t *Tap) emit(ts time.Time, dir int, flags uint8, payload []byte) {
	ack := t.seq[1-dir]
	if flags&tcpframe.FlagSYN != 0 && dir == 0 {
		ack = 0
	}
	if t.parts != nil {
		// No TCP checksum here: reading every byte again costs the
		// forwarded connection throughput. Writers fix it (tcpframe.FixChecksum).
		t.buf = tcpframe.AppendHeaderNoChecksum(t.buf[:0], t.addr[dir], t.addr[1-dir], t.seq[dir], ack, flags, len(payload))
		t.parts(ts, t.buf, payload)
	} else {
		t.buf = tcpframe.Append(t.buf[:0], t.addr[dir], t.addr[1-dir], t.seq[dir], ack, flags, payload)
		t.sink(ts, t.buf)
	}
	t.seq[dir] += uint32(len(payload))
	if flags&(tcpframe.FlagSYN|tcpframe.FlagFIN) != 0 {
		t.seq[dir]++
	}
}

// record emits b as segments of side dir. The time is taken under the
// lock, so frames come out in time order whatever goroutines call.
func (t *Tap) record(dir int, b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fin[dir] {
		return
	}
	ts := t.now()
	for len(b) > 0 {
		n := min(len(b), tcpframe.MaxSegment)
		t.emit(ts, dir, tcpframe.FlagPSH|tcpframe.FlagACK, b[:n])
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
	t.emit(ts, dir, tcpframe.FlagFIN|tcpframe.FlagACK, nil)
	t.emit(ts, 1-dir, tcpframe.FlagACK, nil)
}

// local and remote are the directions of this end's writes and reads.
func (t *Tap) local() int {
	if t.server {
		return 1
	}
	return 0
}

// Read reads from the peer and records what was read.
func (t *Tap) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	if n > 0 {
		t.record(1-t.local(), p[:n])
	}
	if err == io.EOF {
		t.finish(1 - t.local())
	} else if errors.Is(err, syscall.ECONNRESET) {
		// The peer (or a middlebox on the way) reset the connection.
		t.reset(1 - t.local())
	}
	return n, err
}

// Write records p, then writes it to the peer. Recording first keeps the
// tap's frames in the order the bytes were handed to the connection: a
// write returns only once its bytes are sent, by when the peer may have
// answered and the answer been recorded. A write that fails part way has
// recorded more than was sent.
func (t *Tap) Write(p []byte) (int, error) {
	if len(p) > 0 {
		t.record(t.local(), p)
	}
	return t.Conn.Write(p)
}

// CloseWrite half-closes when the wrapped connection can.
func (t *Tap) CloseWrite() error {
	type closeWriter interface{ CloseWrite() error }
	var err error
	if cw, ok := t.Conn.(closeWriter); ok {
		err = cw.CloseWrite()
	}
	t.finish(t.local())
	return err
}

// Close closes the connection and records this end's FIN.
func (t *Tap) Close() error {
	err := t.Conn.Close()
	t.finish(t.local())
	return err
}

// Reset aborts the connection with an RST (SO_LINGER 0, where the wrapped
// connection is TCP), as a program that cancels it does, and records the
// RST from this end.
func (t *Tap) Reset() error {
	if tc, ok := t.Conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	err := t.Conn.Close()
	t.reset(t.local())
	return err
}

// reset records an RST from side dir, which ends both directions.
func (t *Tap) reset(dir int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fin[0] && t.fin[1] {
		return
	}
	t.fin[0], t.fin[1] = true, true
	t.emit(t.now(), dir, tcpframe.FlagRST|tcpframe.FlagACK, nil)
}
