package spdy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Default limits of a Framer.
const (
	DefaultMaxFrameSize   = MaxLength
	DefaultMaxHeaderBytes = 256 << 10
)

// A Framer decodes the frames of one direction of a SPDY/3.1 session. It
// owns that direction's header compression context, so it must see the
// direction from its first frame for header blocks to be readable (see
// ErrMidStream).
//
// Frames can be read from an io.Reader with ReadFrame, or pushed in with
// Write and taken out with Next when bytes arrive in arbitrary chunks, as
// they do from a packet capture.
//
// Memory: frames returned by ReadFrame and Next own their data; nothing
// they hold is reused by later calls, unless ReuseData is set.
type Framer struct {
	// MaxFrameSize is the largest payload length accepted. A larger one
	// is ErrFrameTooLarge, which ends the direction.
	MaxFrameSize uint32
	// MaxHeaderBytes bounds the inflated size of one header block.
	MaxHeaderBytes int
	// ReuseData makes Next return DATA frames whose Data aliases the
	// framer's buffer instead of a copy: valid only until the next call of
	// Write or Next. It saves an allocation per frame for callers that use
	// the bytes at once.
	ReuseData bool
	// DataPieces makes Next return the payload of a DATA frame in pieces
	// as its bytes are pushed, instead of copying them until the frame is
	// complete (push mode only; see Next). The pieces alias the pushed
	// bytes, as with ReuseData.
	DataPieces bool

	r        io.Reader
	inflater headerInflater
	hdr      [FrameHeaderLen]byte

	// push mode
	buf        []byte
	off        int
	ext        []byte // bytes of the last Write, not copied (DataPieces)
	offset     int64  // stream offset of the next byte Next reads
	err        error  // sticky connection-fatal error in push mode
	piece      dataPiece
	pieceFrame DataFrame
}

// NewFramer returns a Framer that reads frames from r. r may be nil when
// the Framer is only used in push mode.
func NewFramer(r io.Reader) *Framer {
	return &Framer{r: r, MaxFrameSize: DefaultMaxFrameSize, MaxHeaderBytes: DefaultMaxHeaderBytes}
}

// ReadFrame reads the next frame. At the end of the input it returns io.EOF;
// a frame cut short returns io.ErrUnexpectedEOF. When the frame is complete
// but malformed, it returns the frame as far as it could be decoded together
// with a *FrameError, and the next call reads the following frame.
func (fr *Framer) ReadFrame() (Frame, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return nil, err
	}
	h, _ := ParseFrameHeader(fr.hdr[:])
	if h.Length > fr.MaxFrameSize {
		return nil, fmt.Errorf("%w: %d bytes announced, limit %d", ErrFrameTooLarge, h.Length, fr.MaxFrameSize)
	}
	// Grow the payload as bytes arrive rather than trusting the length.
	payload, err := readN(fr.r, int(h.Length))
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return fr.Parse(h, payload)
}

func readN(r io.Reader, n int) ([]byte, error) {
	const chunk = 64 << 10
	if n <= chunk {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	b := make([]byte, 0, chunk)
	for len(b) < n {
		k := min(n-len(b), chunk)
		b = append(b, make([]byte, k)...)
		if _, err := io.ReadFull(r, b[len(b)-k:]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Write appends bytes of the direction to the framer's buffer (push mode).
// It never fails. With DataPieces, bytes that continue a DATA frame (or
// begin one, with nothing buffered before them) are not copied: Write
// keeps p, and Next returns it or copies what it cannot return yet, so p
// must stay unchanged until Next has returned nil or an error.
func (fr *Framer) Write(p []byte) (int, error) {
	if fr.err != nil {
		return len(p), nil
	}
	fr.keep() // in case Next was not drained
	if fr.off > 0 && fr.off == len(fr.buf) {
		fr.buf = fr.buf[:0]
		fr.off = 0
	} else if fr.off > 64<<10 && fr.off > len(fr.buf)/2 {
		n := copy(fr.buf, fr.buf[fr.off:])
		fr.buf = fr.buf[:n]
		fr.off = 0
	}
	if fr.DataPieces && len(fr.buf) == fr.off {
		fr.ext = p
		return len(p), nil
	}
	fr.buf = append(fr.buf, p...)
	return len(p), nil
}

// Buffered returns the number of pushed bytes not yet returned as frames
// (with DataPieces, a DATA frame's header and pieces count until its last
// piece).
func (fr *Framer) Buffered() int {
	n := len(fr.buf) - fr.off + len(fr.ext)
	if fr.piece.left > 0 {
		n += FrameHeaderLen + fr.piece.start
	}
	return n
}

// Offset returns the stream offset of the next frame Next will return.
func (fr *Framer) Offset() int64 { return fr.offset }

// src is where Next reads: the buffer, or the bytes Write kept.
func (fr *Framer) src() []byte {
	if fr.off < len(fr.buf) {
		return fr.buf[fr.off:]
	}
	return fr.ext
}

func (fr *Framer) consume(n int) {
	if fr.off < len(fr.buf) {
		fr.off += n
	} else {
		fr.ext = fr.ext[n:]
	}
}

// Keep copies the bytes Write kept without copying (DataPieces) and Next
// has not returned into the framer's own buffer, so that the caller may
// reuse them. Next does it by itself when it needs more bytes; Keep is
// for a caller that stops calling Next before that.
func (fr *Framer) Keep() { fr.keep() }

// keep copies what Write kept and Next cannot return yet into the buffer.
func (fr *Framer) keep() {
	if len(fr.ext) > 0 {
		fr.buf = append(fr.buf[:0], fr.ext...)
		fr.off, fr.ext = 0, nil
	}
}

// Next returns the next complete frame from the pushed bytes and the stream
// offset at which it began. It returns (nil, off, nil) when more bytes are
// needed. Errors are as for ReadFrame; ErrFrameTooLarge is sticky.
//
// With DataPieces, a DATA frame whose payload is not all there yet comes
// as pieces: *DataFrame values with the frame's header (its whole
// Length), the offset of the frame, Data the piece's bytes, Start where
// they begin in the payload and More set on every piece but the last. A
// piece, value and bytes, is valid until the next call of Next or Write.
func (fr *Framer) Next() (Frame, int64, error) {
	if fr.piece.left > 0 {
		return fr.nextPiece()
	}
	off := fr.offset
	if fr.err != nil {
		return nil, off, fr.err
	}
	avail := fr.src()
	if len(avail) < FrameHeaderLen {
		fr.keep()
		return nil, off, nil
	}
	h, _ := ParseFrameHeader(avail)
	if h.Length > fr.MaxFrameSize {
		fr.err = fmt.Errorf("%w: %d bytes announced at offset %d, limit %d", ErrFrameTooLarge, h.Length, off, fr.MaxFrameSize)
		return nil, off, fr.err
	}
	total := FrameHeaderLen + int(h.Length)
	if len(avail) < total {
		if fr.DataPieces && !h.Control {
			fr.consume(FrameHeaderLen)
			fr.offset += FrameHeaderLen
			fr.piece = dataPiece{h: h, left: int(h.Length), off: off}
			return fr.nextPiece()
		}
		fr.keep()
		return nil, off, nil
	}
	var payload []byte
	if (fr.ReuseData || fr.DataPieces) && !h.Control {
		payload = avail[FrameHeaderLen:total:total]
	} else {
		payload = make([]byte, h.Length)
		copy(payload, avail[FrameHeaderLen:total])
	}
	fr.consume(total)
	fr.offset += int64(total)
	f, err := fr.Parse(h, payload)
	return f, off, err
}

// dataPiece is the DATA frame Next is returning in pieces.
type dataPiece struct {
	h     FrameHeader
	left  int   // payload bytes still to come
	start int   // payload bytes returned
	off   int64 // the frame's offset
}

func (fr *Framer) nextPiece() (Frame, int64, error) {
	p := &fr.piece
	avail := fr.src()
	n := min(p.left, len(avail))
	if n == 0 {
		fr.keep()
		return nil, p.off, nil
	}
	// One frame value serves every piece: valid until the next call,
	// as the piece's bytes are.
	f := &fr.pieceFrame
	*f = DataFrame{FrameHeader: p.h, Data: avail[:n:n], Start: p.start}
	fr.consume(n)
	fr.offset += int64(n)
	p.left -= n
	p.start += n
	f.More = p.left > 0
	return f, p.off, nil
}

// Parse decodes a frame from its header and complete payload. Header blocks
// are inflated with the framer's compression context, so frames must be
// given in order. The returned frame keeps references into payload.
//
// A malformed payload gives a *FrameError; where part of the frame could be
// decoded (a SYN_STREAM whose header block is unreadable), the frame is
// returned as well.
func (fr *Framer) Parse(h FrameHeader, payload []byte) (Frame, error) {
	if uint32(len(payload)) != h.Length {
		return nil, &FrameError{Type: h.Type, Err: fmt.Errorf("payload is %d bytes, header says %d", len(payload), h.Length)}
	}
	if !h.Control {
		return &DataFrame{FrameHeader: h, Data: payload}, nil
	}
	if h.Version != Version {
		return &UnknownFrame{FrameHeader: h, Payload: payload},
			&FrameError{Type: h.Type, Err: fmt.Errorf("control frame version %d, want %d", h.Version, Version)}
	}
	var f Frame
	var err error
	switch h.Type {
	case TypeSynStream:
		f, err = parseSynStream(fr, &h, payload)
	case TypeSynReply:
		f, err = parseSynReply(fr, &h, payload)
	case TypeRstStream:
		f, err = parseRstStream(&h, payload)
	case TypeSettings:
		f, err = parseSettings(&h, payload)
	case TypePing:
		f, err = parsePing(&h, payload)
	case TypeGoAway:
		f, err = parseGoAway(&h, payload)
	case TypeHeaders:
		f, err = parseHeaders(fr, &h, payload)
	case TypeWindowUpdate:
		f, err = parseWindowUpdate(&h, payload)
	default:
		return &UnknownFrame{FrameHeader: h, Payload: payload}, nil
	}
	if err != nil {
		var fe *FrameError
		if !errors.As(err, &fe) {
			err = &FrameError{Type: h.Type, StreamID: h.StreamID, Err: err}
		}
	}
	return f, err
}

func wrongLength(h *FrameHeader, want string) error {
	return fmt.Errorf("payload is %d bytes, want %s", h.Length, want)
}

func (fr *Framer) headerBlock(h *FrameHeader, block []byte) (Headers, error) {
	max := fr.MaxHeaderBytes
	if max <= 0 {
		max = DefaultMaxHeaderBytes
	}
	hs, err := fr.inflater.inflate(block, max)
	if err != nil {
		return nil, &FrameError{Type: h.Type, StreamID: h.StreamID, Err: err}
	}
	return hs, nil
}

func parseSynStream(fr *Framer, h *FrameHeader, p []byte) (Frame, error) {
	if len(p) < 10 {
		return &UnknownFrame{FrameHeader: *h, Payload: p}, wrongLength(h, "at least 10")
	}
	h.StreamID = binary.BigEndian.Uint32(p) & 0x7fffffff
	f := &SynStreamFrame{
		AssociatedTo:   binary.BigEndian.Uint32(p[4:]) & 0x7fffffff,
		Priority:       p[8] >> 5,
		Slot:           p[9],
		HeaderBlockLen: len(p) - 10,
	}
	hs, err := fr.headerBlock(h, p[10:])
	f.FrameHeader, f.Headers = *h, hs
	return f, err
}

func parseSynReply(fr *Framer, h *FrameHeader, p []byte) (Frame, error) {
	if len(p) < 4 {
		return &UnknownFrame{FrameHeader: *h, Payload: p}, wrongLength(h, "at least 4")
	}
	h.StreamID = binary.BigEndian.Uint32(p) & 0x7fffffff
	f := &SynReplyFrame{HeaderBlockLen: len(p) - 4}
	hs, err := fr.headerBlock(h, p[4:])
	f.FrameHeader, f.Headers = *h, hs
	return f, err
}

func parseHeaders(fr *Framer, h *FrameHeader, p []byte) (Frame, error) {
	if len(p) < 4 {
		return &UnknownFrame{FrameHeader: *h, Payload: p}, wrongLength(h, "at least 4")
	}
	h.StreamID = binary.BigEndian.Uint32(p) & 0x7fffffff
	f := &HeadersFrame{HeaderBlockLen: len(p) - 4}
	hs, err := fr.headerBlock(h, p[4:])
	f.FrameHeader, f.Headers = *h, hs
	return f, err
}

func parseRstStream(h *FrameHeader, p []byte) (Frame, error) {
	if len(p) != 8 {
		return &UnknownFrame{FrameHeader: *h, Payload: p}, wrongLength(h, "8")
	}
	h.StreamID = binary.BigEndian.Uint32(p) & 0x7fffffff
	return &RstStreamFrame{FrameHeader: *h, Status: RstStatus(binary.BigEndian.Uint32(p[4:]))}, nil
}

func parseSettings(h *FrameHeader, p []byte) (Frame, error) {
	if len(p) < 4 {
		return &UnknownFrame{FrameHeader: *h, Payload: p}, wrongLength(h, "at least 4")
	}
	n := binary.BigEndian.Uint32(p)
	if uint64(len(p)-4) != uint64(n)*8 {
		return &UnknownFrame{FrameHeader: *h, Payload: p}, fmt.Errorf("%d entries announced in %d bytes", n, len(p)-4)
	}
	f := &SettingsFrame{FrameHeader: *h, Settings: make([]Setting, 0, n)}
	for b := p[4:]; len(b) >= 8; b = b[8:] {
		w := binary.BigEndian.Uint32(b)
		f.Settings = append(f.Settings, Setting{Flags: uint8(w >> 24), ID: SettingID(w & 0xffffff), Value: binary.BigEndian.Uint32(b[4:])})
	}
	return f, nil
}

func parsePing(h *FrameHeader, p []byte) (Frame, error) {
	if len(p) != 4 {
		return &UnknownFrame{FrameHeader: *h, Payload: p}, wrongLength(h, "4")
	}
	return &PingFrame{FrameHeader: *h, ID: binary.BigEndian.Uint32(p)}, nil
}

func parseGoAway(h *FrameHeader, p []byte) (Frame, error) {
	// SPDY/3 adds a status code; accept the 4-byte SPDY/2 form as well.
	if len(p) != 8 && len(p) != 4 {
		return &UnknownFrame{FrameHeader: *h, Payload: p}, wrongLength(h, "8")
	}
	f := &GoAwayFrame{FrameHeader: *h, LastGoodStreamID: binary.BigEndian.Uint32(p) & 0x7fffffff}
	if len(p) == 8 {
		f.Status = GoAwayStatus(binary.BigEndian.Uint32(p[4:]))
	}
	return f, nil
}

func parseWindowUpdate(h *FrameHeader, p []byte) (Frame, error) {
	if len(p) != 8 {
		return &UnknownFrame{FrameHeader: *h, Payload: p}, wrongLength(h, "8")
	}
	h.StreamID = binary.BigEndian.Uint32(p) & 0x7fffffff
	return &WindowUpdateFrame{FrameHeader: *h, Delta: binary.BigEndian.Uint32(p[4:]) & 0x7fffffff}, nil
}
