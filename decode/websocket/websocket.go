package websocket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Opcode is a WebSocket frame opcode (RFC 6455 section 5.2).
type Opcode uint8

// Opcodes.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xa
)

func (o Opcode) String() string {
	switch o {
	case OpContinuation:
		return "continuation"
	case OpText:
		return "text"
	case OpBinary:
		return "binary"
	case OpClose:
		return "close"
	case OpPing:
		return "ping"
	case OpPong:
		return "pong"
	}
	return "opcode-" + strconv.Itoa(int(o))
}

// IsControl reports whether o is a control opcode (close, ping, pong...).
func (o Opcode) IsControl() bool { return o&0x8 != 0 }

// Frame is one WebSocket frame, unmasked.
type Frame struct {
	Fin    bool
	RSV    uint8 // the three reserved bits, as bits 2..0
	Opcode Opcode
	Masked bool
	// Payload is the unmasked payload; the Frame owns it unless the
	// Decoder lends it (Decoder.Borrow).
	Payload []byte
	// HeaderLen is the size of the frame header on the wire (2 to 14); 0
	// on a part that continues a frame (Decoder.Parts).
	HeaderLen int
	// Length is the whole frame's payload length: len(Payload), unless
	// the Frame is a part of it (Decoder.Parts).
	Length uint64
	// Part is where Payload begins in the frame's payload: 0 but on the
	// second and later parts of a frame (Decoder.Parts).
	Part uint64
	// More says that more of the frame's payload follows, in the next
	// Frames Next returns (Decoder.Parts).
	More bool
}

// WireLen is the frame's size on the wire.
func (f *Frame) WireLen() int { return f.HeaderLen + len(f.Payload) }

// CloseStatus returns the status code and reason of a close frame; code 1005
// (no status) when the payload is empty.
func (f *Frame) CloseStatus() (code uint16, reason string) {
	if len(f.Payload) < 2 {
		return 1005, ""
	}
	return binary.BigEndian.Uint16(f.Payload), string(f.Payload[2:])
}

// CloseCodeName names the common close codes.
func CloseCodeName(code uint16) string {
	switch code {
	case 1000:
		return "normal closure"
	case 1001:
		return "going away"
	case 1002:
		return "protocol error"
	case 1003:
		return "unsupported data"
	case 1005:
		return "no status"
	case 1006:
		return "abnormal closure"
	case 1007:
		return "invalid payload"
	case 1008:
		return "policy violation"
	case 1009:
		return "message too big"
	case 1011:
		return "internal error"
	}
	return "code " + strconv.Itoa(int(code))
}

// DefaultMaxFrameSize bounds a frame's payload unless the Decoder says
// otherwise.
const DefaultMaxFrameSize = 16 << 20

// Errors.
var (
	// ErrFrameTooLarge means a frame announced more payload than allowed.
	ErrFrameTooLarge = errors.New("websocket: frame too large")
	// ErrProtocol means the frame breaks RFC 6455 framing rules.
	ErrProtocol = errors.New("websocket: protocol violation")
)

// Decoder decodes one direction of a WebSocket connection from pushed
// bytes. Framing errors are sticky: after one, the direction cannot be
// re-synchronised.
type Decoder struct {
	// MaxFrameSize bounds a frame's payload.
	MaxFrameSize uint64
	// Borrow makes a frame's Payload a view of the decoder's buffer,
	// unmasked in place and valid until the next Write, instead of a copy.
	Borrow bool
	// Parts makes Next return a data frame's payload as it arrives, in
	// parts (each a Frame with the frame's header fields, Part and More
	// set), instead of once it is whole: a peer that reads a message as
	// a stream (client-go's SPDY tunnel) acts on its first bytes before
	// the rest has come. Control frames still come whole.
	Parts        bool
	buf          []byte
	off          int
	offset       int64
	err          error
	inFragmented bool
	// In Parts mode, the data frame whose payload is arriving.
	cur     *Frame
	curOff  int64   // where it began in the stream
	curKey  [4]byte // its masking key
	curLeft uint64  // its payload bytes still to come
}

// NewDecoder returns a Decoder with the default limits.
func NewDecoder() *Decoder { return &Decoder{MaxFrameSize: DefaultMaxFrameSize} }

// Write appends bytes of the direction. It never fails.
func (d *Decoder) Write(p []byte) (int, error) {
	if d.err != nil {
		return len(p), nil
	}
	if d.off > 0 && d.off == len(d.buf) {
		d.buf, d.off = d.buf[:0], 0
	} else if d.off > 64<<10 && d.off > len(d.buf)/2 {
		n := copy(d.buf, d.buf[d.off:])
		d.buf, d.off = d.buf[:n], 0
	}
	d.buf = append(d.buf, p...)
	return len(p), nil
}

// Buffered returns the bytes pushed but not yet returned in frames.
func (d *Decoder) Buffered() int { return len(d.buf) - d.off }

// Next returns the next complete frame and the stream offset it began at,
// or nil when more bytes are needed.
func (d *Decoder) Next() (*Frame, int64, error) {
	off := d.offset
	if d.err != nil {
		return nil, off, d.err
	}
	b := d.buf[d.off:]
	if d.cur != nil {
		return d.nextPart(b)
	}
	if len(b) < 2 {
		return nil, off, nil
	}
	f := &Frame{Fin: b[0]&0x80 != 0, RSV: (b[0] >> 4) & 7, Opcode: Opcode(b[0] & 0x0f), Masked: b[1]&0x80 != 0}
	n := uint64(b[1] & 0x7f)
	hl := 2
	switch n {
	case 126:
		if len(b) < 4 {
			return nil, off, nil
		}
		n = uint64(binary.BigEndian.Uint16(b[2:]))
		hl = 4
	case 127:
		if len(b) < 10 {
			return nil, off, nil
		}
		n = binary.BigEndian.Uint64(b[2:])
		hl = 10
	}
	if f.Masked {
		hl += 4
	}
	max := d.MaxFrameSize
	if max == 0 {
		max = DefaultMaxFrameSize
	}
	if n > max {
		d.err = fmt.Errorf("%w: %d bytes announced at offset %d, limit %d", ErrFrameTooLarge, n, off, max)
		return nil, off, d.err
	}
	if f.Opcode.IsControl() && (n > 125 || !f.Fin) {
		d.err = fmt.Errorf("%w: %v frame at offset %d is fragmented or longer than 125 bytes", ErrProtocol, f.Opcode, off)
		return nil, off, d.err
	}
	if o := f.Opcode; o > OpBinary && !o.IsControl() || o > OpPong {
		d.err = fmt.Errorf("%w: reserved opcode %d at offset %d", ErrProtocol, o, off)
		return nil, off, d.err
	}
	f.HeaderLen, f.Length = hl, n
	if uint64(len(b)) < uint64(hl)+n {
		if !d.Parts || f.Opcode.IsControl() || len(b) <= hl {
			return nil, off, nil
		}
		// The first part of a data frame.
		d.cur, d.curOff, d.curLeft = f, off, n
		if f.Masked {
			copy(d.curKey[:], b[hl-4:hl])
		}
		d.off += hl
		d.offset += int64(hl)
		f, _, _ = d.nextPart(d.buf[d.off:])
		return f, off, d.fragmentation(f, off)
	}
	if d.Borrow {
		f.Payload = b[hl : hl+int(n) : hl+int(n)]
	} else {
		f.Payload = make([]byte, n)
		copy(f.Payload, b[hl:])
	}
	if f.Masked {
		key := b[hl-4 : hl]
		for i := range f.Payload {
			f.Payload[i] ^= key[i&3]
		}
	}
	total := hl + int(n)
	d.off += total
	d.offset += int64(total)
	return f, off, d.fragmentation(f, off)
}

// fragmentation checks a frame that begins (whole, or its first part)
// against the message it may continue.
func (d *Decoder) fragmentation(f *Frame, off int64) error {
	if f.Opcode.IsControl() {
		return nil
	}
	switch {
	case f.Opcode == OpContinuation && !d.inFragmented:
		return fmt.Errorf("%w: continuation frame at offset %d outside a message", ErrProtocol, off)
	case f.Opcode != OpContinuation && d.inFragmented:
		return fmt.Errorf("%w: new %v message at offset %d inside a fragmented one", ErrProtocol, f.Opcode, off)
	}
	d.inFragmented = !f.Fin
	return nil
}

// nextPart returns what has come of the current frame's payload (b is
// the buffer from it on), or nil when nothing has.
func (d *Decoder) nextPart(b []byte) (*Frame, int64, error) {
	c := d.cur
	n := min(uint64(len(b)), d.curLeft)
	if n == 0 {
		return nil, d.curOff, nil
	}
	f := &Frame{Fin: c.Fin, RSV: c.RSV, Opcode: c.Opcode, Masked: c.Masked, Length: c.Length, Part: c.Length - d.curLeft}
	if f.Part == 0 {
		f.HeaderLen = c.HeaderLen
	}
	if d.Borrow {
		f.Payload = b[:n:n]
	} else {
		f.Payload = append([]byte(nil), b[:n]...)
	}
	if f.Masked {
		// The key's phase runs on from the frame's start.
		for i := range f.Payload {
			f.Payload[i] ^= d.curKey[(f.Part+uint64(i))&3]
		}
	}
	d.off += int(n)
	d.offset += int64(n)
	d.curLeft -= n
	f.More = d.curLeft > 0
	if !f.More {
		d.cur = nil
	}
	return f, d.curOff, nil
}

// Summarize returns a one-line description of a frame.
func Summarize(f *Frame) string {
	s := "WS " + f.Opcode.String()
	if !f.Fin {
		s += " (fragment)"
	}
	if f.Masked {
		s += " masked"
	}
	switch f.Opcode {
	case OpClose:
		code, reason := f.CloseStatus()
		s += fmt.Sprintf(" %d (%s)", code, CloseCodeName(code))
		if reason != "" {
			if !utf8.ValidString(reason) {
				reason = strconv.QuoteToASCII(reason)
			}
			s += " " + strconv.QuoteToASCII(reason)
		}
	default:
		n := f.Length
		if n == 0 {
			n = uint64(len(f.Payload))
		}
		s += fmt.Sprintf(" len=%d", n)
	}
	return s
}
