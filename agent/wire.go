package agent

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/timeline"
)

// ProtocolVersion is the version of the trace↔agent protocol this pftap
// speaks. Version 1 (pftap before 2026-12) streamed every captured frame as
// pcapng; version 2 decodes on the node and sends trace the events of its
// own session only (see the package documentation).
const ProtocolVersion = 2

// After the Hello, both sides send messages: a type byte, the payload's
// length (4 bytes, big endian) and the payload.
const (
	// Agent to trace.
	MsgEvent   byte = 'e' // JSON WireEvent: one decoded event of a leg
	MsgRecords byte = 'r' // binary: TLS records of a leg (EncodeRecords)
	MsgStatus  byte = 's' // JSON Status: counters so far
	MsgFrame   byte = 'f' // binary: one captured frame, for trace -w (EncodeFrame)
	MsgFinal   byte = 'F' // JSON Final: a leg's totals and flows, at the end
	MsgDone    byte = 'D' // empty: nothing more follows
	MsgPong    byte = 'o' // binary: a MsgPing's 8 bytes, then the agent's clock (Unix ns, 8 bytes)

	// Trace to agent.
	MsgUpgrade   byte = 'u' // JSON Upgrade: one of trace's upgrade requests, on the agent's clock
	MsgSPDY      byte = 'p' // binary: the first bytes of one of trace's SPDY sessions (EncodeSPDY)
	MsgGrid      byte = 'g' // binary: a digest of a session's bytes beyond them (EncodeGrid)
	MsgKeepalive byte = 'k' // empty: trace is still there
	MsgPing      byte = 'i' // 8 bytes: trace's clock (Unix ns), answered at once with MsgPong
	MsgEnd       byte = 'E' // empty: trace is done; finish and send the Final
)

// MaxMessage bounds a message's payload: a frame, a batch of records, or a
// leg's flows.
const MaxMessage = 16 << 20

// ErrMessageTooLarge is returned by ReadMessage for a payload over
// MaxMessage.
var ErrMessageTooLarge = errors.New("agent protocol: message too large")

// WriteMessage writes one message.
func WriteMessage(w io.Writer, typ byte, payload []byte) error {
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(payload)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// AppendMessage appends one message to b.
func AppendMessage(b []byte, typ byte, payload []byte) []byte {
	b = append(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// ReadMessage reads one message; buf is reused for its payload when large
// enough (the payload is only valid until the next call).
func ReadMessage(r *bufio.Reader, buf []byte) (typ byte, payload []byte, err error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > MaxMessage {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrMessageTooLarge, n)
	}
	// Grown as the bytes come, so that a length that lies allocates no
	// more than what arrived.
	buf = buf[:0]
	for len(buf) < int(n) {
		k := min(int(n)-len(buf), 1<<20)
		if cap(buf)-len(buf) < k {
			buf = append(buf[:cap(buf)], make([]byte, k)...)[:len(buf)]
		}
		m, err := io.ReadFull(r, buf[len(buf):len(buf)+k])
		buf = buf[:len(buf)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
	}
	return h[0], buf, nil
}

// WireEvent is one decoded event of one of the agent's legs.
type WireEvent struct {
	// Leg is the leg's index in the Hello.
	Leg int `json:"l"`
	// T is the time of the packet that completed the event.
	T     time.Time     `json:"t"`
	Event *decode.Event `json:"e"`
}

// LegStatus is what one leg's capture has seen so far.
type LegStatus struct {
	// Packets and Bytes are every frame the capture took (what is left
	// out included), Drops the kernel's drops.
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Drops   uint64 `json:"drops"`
	// LeftOut counts the connections found to be none of trace's session
	// and their packets; Ambiguous the connections that could not be told
	// apart from it (left out too).
	LeftOutConns   int    `json:"left_out_conns,omitempty"`
	LeftOutPackets uint64 `json:"left_out_packets,omitempty"`
	Ambiguous      int    `json:"ambiguous,omitempty"`
	// Shortened counts the frames sent for trace -w with only their
	// headers, the link to trace being too slow for their payload.
	Shortened uint64 `json:"shortened,omitempty"`
	// Conns and Requests are what the leg's decoding still waits for
	// (connections not closed both ways, requests not ended).
	Conns    int `json:"conns"`
	Requests int `json:"requests"`
}

// Status is the agent's periodic report.
type Status struct {
	Legs []LegStatus `json:"legs"`
	// Sent is how many bytes the agent has sent trace.
	Sent int64 `json:"sent"`
}

// Final is one leg's result, sent once the agent has finished decoding.
type Final struct {
	Leg     int             `json:"l"`
	Summary decode.Summary  `json:"summary"`
	Flows   []timeline.Flow `json:"flows,omitempty"`
	Status  LegStatus       `json:"status"`
}

// Upgrade is one of trace's upgrade requests on its leg, told to the agent
// as it happens so that the agent finds the connections the apiserver and
// the kubelet made for it. Times are on the agent's clock (trace's estimate
// of it), Uncertainty how far off they may be.
type Upgrade struct {
	// ID is the connection's number on trace's leg.
	ID   int       `json:"id"`
	Sent time.Time `json:"sent,omitzero"`
	// Answered is when the answer came back, Status its code.
	Answered time.Time `json:"answered,omitzero"`
	Status   int       `json:"status,omitempty"`
	// Closed is when the connection closed, unanswered.
	Closed      time.Time     `json:"closed,omitzero"`
	Uncertainty time.Duration `json:"uncertainty"`
}

// SPDYPrefix is how many bytes of each direction of each of trace's SPDY
// sessions trace sends the agent (MsgSPDY), and the step of the digests
// beyond (MsgGrid).
const SPDYPrefix = 64 << 10

// EncodeSPDY encodes bytes of one of trace's SPDY sessions: its ID, the
// direction (0 towards the pod), their offset.
func EncodeSPDY(b []byte, id int, dir int, off int64, data []byte) []byte {
	b = binary.AppendUvarint(b, uint64(id))
	b = append(b, byte(dir))
	b = binary.AppendUvarint(b, uint64(off))
	return append(b, data...)
}

// DecodeSPDY decodes EncodeSPDY's form.
func DecodeSPDY(p []byte) (id int, dir int, off int64, data []byte, err error) {
	v, n := binary.Uvarint(p)
	if n <= 0 || len(p) < n+1 {
		return 0, 0, 0, nil, errors.New("agent protocol: bad SPDY message")
	}
	id, dir, p = int(v), int(p[n]), p[n+1:]
	o, n := binary.Uvarint(p)
	if n <= 0 || dir > 1 || o > SPDYPrefix {
		return 0, 0, 0, nil, errors.New("agent protocol: bad SPDY message")
	}
	return id, dir, int64(o), p[n:], nil
}

// EncodeGrid encodes the CRC-32 (IEEE) of the first k bytes of one
// direction of one of trace's SPDY sessions, k a multiple of SPDYPrefix.
func EncodeGrid(b []byte, id, dir int, k int64, crc uint32) []byte {
	b = binary.AppendUvarint(b, uint64(id))
	b = append(b, byte(dir))
	b = binary.AppendUvarint(b, uint64(k))
	return binary.BigEndian.AppendUint32(b, crc)
}

// DecodeGrid decodes EncodeGrid's form.
func DecodeGrid(p []byte) (id, dir int, k int64, crc uint32, err error) {
	v, n := binary.Uvarint(p)
	if n <= 0 || len(p) < n+1 {
		return 0, 0, 0, 0, errors.New("agent protocol: bad grid message")
	}
	id, dir, p = int(v), int(p[n]), p[n+1:]
	kv, n := binary.Uvarint(p)
	if n <= 0 || dir > 1 || len(p) != n+4 || kv == 0 || kv%SPDYPrefix != 0 {
		return 0, 0, 0, 0, errors.New("agent protocol: bad grid message")
	}
	return id, dir, int64(kv), binary.BigEndian.Uint32(p[n:]), nil
}

// EncodeRecords encodes TLS records of one leg: the leg, then per record
// its connection, direction, type, length and time.
func EncodeRecords(b []byte, leg int, rs []decode.TLSRecord) []byte {
	b = binary.AppendUvarint(b, uint64(leg))
	for _, r := range rs {
		b = binary.AppendUvarint(b, uint64(r.Conn))
		d := byte(0)
		if r.Dir == decode.FromServer {
			d = 1
		}
		b = append(b, d, r.Type)
		b = binary.AppendUvarint(b, uint64(r.Length))
		b = binary.AppendVarint(b, r.Time.UnixNano())
	}
	return b
}

// DecodeRecords decodes EncodeRecords' form, appending to rs.
func DecodeRecords(p []byte, rs []decode.TLSRecord) (leg int, out []decode.TLSRecord, err error) {
	bad := errors.New("agent protocol: bad records message")
	v, n := binary.Uvarint(p)
	if n <= 0 {
		return 0, rs, bad
	}
	leg, p = int(v), p[n:]
	for len(p) > 0 {
		c, n := binary.Uvarint(p)
		if n <= 0 || len(p) < n+2 {
			return leg, rs, bad
		}
		d, typ := p[n], p[n+1]
		p = p[n+2:]
		l, n := binary.Uvarint(p)
		if n <= 0 || l > 1<<16 {
			return leg, rs, bad
		}
		p = p[n:]
		t, n := binary.Varint(p)
		if n <= 0 {
			return leg, rs, bad
		}
		p = p[n:]
		dir := decode.ToServer
		if d == 1 {
			dir = decode.FromServer
		}
		rs = append(rs, decode.TLSRecord{Time: time.Unix(0, t), Conn: int(c), Dir: dir, Type: typ, Length: int(l)})
	}
	return leg, rs, nil
}

// Frame flags.
const (
	// FrameShortened: only the frame's headers were sent (its payload
	// did not fit the link to trace).
	FrameShortened byte = 1
)

// EncodeFrame encodes one captured frame: its leg, time, length on the
// wire, flags and the bytes sent.
func EncodeFrame(b []byte, leg int, ts time.Time, orig int, flags byte, data []byte) []byte {
	b = append(b, byte(leg), flags)
	b = binary.BigEndian.AppendUint64(b, uint64(ts.UnixNano()))
	b = binary.BigEndian.AppendUint32(b, uint32(orig))
	return append(b, data...)
}

// DecodeFrame decodes EncodeFrame's form; data aliases p.
func DecodeFrame(p []byte) (leg int, ts time.Time, orig int, flags byte, data []byte, err error) {
	if len(p) < 14 {
		return 0, time.Time{}, 0, 0, nil, errors.New("agent protocol: bad frame message")
	}
	leg, flags = int(p[0]), p[1]
	ts = time.Unix(0, int64(binary.BigEndian.Uint64(p[2:])))
	orig = int(binary.BigEndian.Uint32(p[10:]))
	data = p[14:]
	if orig < len(data) {
		orig = len(data)
	}
	return leg, ts, orig, flags, data, nil
}
