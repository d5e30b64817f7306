package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/pftap/pftap/decode/packet"
	"github.com/pftap/pftap/leg"
)

// Leg describes one interface of a recording: in pftap's recordings, one
// hop of the port-forward chain.
type Leg struct {
	// Leg is the leg's place in the chain (written at the end of the
	// interface's description, leg.Leg.Marker, so that readers know the
	// leg without reading its name), the name Wireshark shows as the
	// interface's ("L4 pod lo (netns pftap-1-pod)"), what it connects,
	// and at which end of its connection it is tapped.
	leg.Leg
	// LinkType of the frames; Ethernet when zero.
	LinkType packet.LinkType
}

// SecretsTLSKeyLog is the Decryption Secrets Block type of a TLS key log
// (NSS key log format).
const SecretsTLSKeyLog = 0x544c534b

// Writer writes a pcapng recording: one interface per leg, nanosecond
// timestamps, an optional comment per packet, session metadata in the
// section header, and TLS key logs in Decryption Secrets Blocks. It is safe
// for concurrent use and flushes every block as it is written, so a file
// is readable up to its last packet even when the process is killed
// (unless Gather made it gather its writes: then up to its last Sync).
type Writer struct {
	mu     sync.Mutex
	out    io.Writer
	closer io.Closer
	// sync flushes a compressed file's compressor (nil: nothing to do).
	sync    func() error
	comment string
	ng      *pcapgo.NgWriter
	legs    []Leg
	pending [][]byte // key logs given before the first leg
	epb     []byte
	// vec writes blocks with writev when out is a file (Linux).
	vec func(parts ...[]byte) error
	// file gathers what goes to a file made by NewFileWriter (below the
	// compressor of a compressed one) once Gather has been called.
	file   *gatherFile
	closed bool
}

// Create creates (or truncates) path with mode 0600, since recordings can
// hold secrets, and returns a Writer on it. comment becomes the section
// header's comment.
func Create(path, comment string) (*Writer, error) {
	f, err := CreateFile(path)
	if err != nil {
		return nil, err
	}
	return NewFileWriter(f, comment), nil
}

// CreateFile creates (or truncates) path for a recording, with mode 0600:
// what Create opens, for a caller that checks the path before it has
// anything to write.
func CreateFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
}

// NewFileWriter returns a Writer on an open file, which Close closes. A
// file named *.zst or *.gz is compressed as it is written (zstd at its
// fastest level, a block compressed and written on a goroutine of its own
// while the next is filled; gzip at its fastest; Wireshark and tshark open both,
// Debian 12's tshark 4.0 included), and what a killed run leaves is still
// read up to its last whole block (pftap decode, replay).
func NewFileWriter(f *os.File, comment string) *Writer {
	gf := &gatherFile{f: f}
	var w *Writer
	switch {
	case strings.HasSuffix(f.Name(), ".zst"):
		enc, _ := zstd.NewWriter(gf, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(2), zstd.WithEncoderCRC(false))
		w = NewWriter(enc, comment)
		w.closer, w.sync = compressedFile{enc, gf}, enc.Flush
	case strings.HasSuffix(f.Name(), ".gz"):
		enc, _ := gzip.NewWriterLevel(gf, gzip.BestSpeed)
		w = NewWriter(enc, comment)
		w.closer, w.sync = compressedFile{enc, gf}, enc.Flush
	default:
		w = NewWriter(gf, comment)
		w.closer = gf
		w.vec = writevFunc(f)
	}
	w.file = gf
	return w
}

// compressedFile closes the compressor (its last frame), then the file.
type compressedFile struct {
	enc io.WriteCloser
	f   io.Closer
}

func (c compressedFile) Close() error { return errors.Join(c.enc.Close(), c.f.Close()) }

// gatherSize is how much a gathering Writer holds before it writes to its
// file: one write(2) of 16 KiB costs about as much system time as one of
// 1 MiB on an ext4 file, and a recording written a packet (or a
// compressor's block) at a time spent most of its time in them.
const gatherSize = 1 << 20

// gatherFile is the file below a Writer made by NewFileWriter. Until
// gathering it passes every write straight on; then it keeps writes whole
// in buf and writes them out when buf is full and on flush, so that the
// file always ends at the end of a whole write (a block, or a
// compressor's block) unless the kernel itself is interrupted.
type gatherFile struct {
	mu     sync.Mutex
	f      *os.File
	gather bool
	buf    []byte
	err    error
}

func (g *gatherFile) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.gather {
		return g.f.Write(p)
	}
	if g.err != nil {
		return 0, g.err
	}
	g.buf = append(g.buf, p...)
	if len(g.buf) >= gatherSize {
		g.flushLocked()
	}
	return len(p), g.err
}

// appendBlock appends a block that enc writes into buf (one copy of the
// packet, not two) and writes buf out when it is full.
func (g *gatherFile) appendBlock(enc func([]byte) []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return g.err
	}
	g.buf = enc(g.buf)
	if len(g.buf) >= gatherSize {
		g.flushLocked()
	}
	return g.err
}

func (g *gatherFile) flush() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.flushLocked()
	return g.err
}

func (g *gatherFile) flushLocked() {
	if len(g.buf) > 0 && g.err == nil {
		_, g.err = g.f.Write(g.buf)
	}
	g.buf = g.buf[:0]
}

// Close writes what is gathered and closes the file.
func (g *gatherFile) Close() error {
	return errors.Join(g.flush(), g.f.Close())
}

// NewWriter returns a Writer on out. Nothing is written until the first
// leg is added.
func NewWriter(out io.Writer, comment string) *Writer {
	return &Writer{out: out, comment: comment}
}

func (w *Writer) ngInterface(l Leg) pcapgo.NgInterface {
	lt := layers.LinkTypeEthernet
	if l.LinkType != 0 {
		lt = layers.LinkType(l.LinkType)
	}
	return pcapgo.NgInterface{Name: l.Name, Description: l.Leg.Marker(), LinkType: lt,
		TimestampResolution: 9, SnapLength: Snap, OS: runtime.GOOS}
}

// AddLeg adds an interface and returns its index for WritePacket.
func (w *Writer) AddLeg(l Leg) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, errors.New("pcapng writer is closed")
	}
	if w.ng == nil {
		ng, err := pcapgo.NewNgWriterInterface(w.out, w.ngInterface(l), pcapgo.NgWriterOptions{
			SectionInfo: pcapgo.NgSectionInfo{Hardware: runtime.GOARCH, OS: runtime.GOOS, Application: "pftap", Comment: w.comment}})
		if err != nil {
			return 0, err
		}
		w.ng = ng
		w.legs = append(w.legs, l)
		for _, k := range w.pending {
			if err := ng.WriteDecryptionSecretsBlock(SecretsTLSKeyLog, k); err != nil {
				return 0, err
			}
		}
		w.pending = nil
		return 0, ng.Flush()
	}
	id, err := w.ng.AddInterface(w.ngInterface(l))
	if err != nil {
		return 0, err
	}
	w.legs = append(w.legs, l)
	return id, w.ng.Flush()
}

// WritePacket writes one frame of leg, captured at ts, with an optional
// comment (Wireshark shows it with the packet), and flushes it.
func (w *Writer) WritePacket(leg int, ts time.Time, frame []byte, origLen int, comment string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ng == nil || leg < 0 || leg >= len(w.legs) {
		return fmt.Errorf("pcapng: no leg %d", leg)
	}
	if origLen < len(frame) {
		origLen = len(frame)
	}
	if len(comment) > 0xfff0 {
		comment = comment[:0xfff0]
	}
	// pcapgo's buffer is empty here (every block is flushed), so the
	// Enhanced Packet Block goes straight to the file in one write; to a
	// file, a gathering write that does not copy the packet, or, once
	// Gather was called, a copy into what is gathered.
	if w.file != nil && w.vec != nil && w.file.gathering() {
		return w.file.appendBlock(func(b []byte) []byte { return appendEPB(b, leg, ts, frame, origLen, comment) })
	}
	if w.vec != nil {
		head, tail := epbParts(w.epb[:0], leg, ts, frame, origLen, comment)
		w.epb = tail
		return w.vec(head, frame, tail[28:])
	}
	w.epb = appendEPB(w.epb[:0], leg, ts, frame, origLen, comment)
	_, err := w.out.Write(w.epb)
	return err
}

// epbParts encodes an EPB's 28-byte header and its tail (padding, options,
// trailing length) into b, without the packet: b[:28] is the header and
// b[28:] the tail.
func epbParts(b []byte, iface int, ts time.Time, data []byte, origLen int, comment string) (head, all []byte) {
	b = appendEPB(b, iface, ts, nil, origLen, comment)
	// appendEPB wrote lengths for an empty packet: redo the header for data.
	pad := (4 - len(data)&3) & 3
	total := len(b) + len(data) + pad
	le := binary.LittleEndian
	le.PutUint32(b[4:], uint32(total))
	le.PutUint32(b[20:], uint32(len(data)))
	le.PutUint32(b[len(b)-4:], uint32(total))
	tail := make([]byte, 0, len(b)-28+pad)
	tail = append(tail, make([]byte, pad)...)
	tail = append(tail, b[28:]...)
	b = append(b[:28], tail...)
	return b[:28], b
}

// appendEPB encodes an Enhanced Packet Block (pcapng section 4.3) with
// nanosecond timestamps and an optional comment option.
func appendEPB(b []byte, iface int, ts time.Time, data []byte, origLen int, comment string) []byte {
	pad := func(n int) int { return (4 - n&3) & 3 }
	optLen := 0
	if comment != "" {
		optLen = 4 + len(comment) + pad(len(comment)) + 4 // opt_comment, then opt_endofopt
	}
	total := 28 + len(data) + pad(len(data)) + optLen + 4
	le := binary.LittleEndian
	ns := uint64(ts.UnixNano())
	b = le.AppendUint32(b, 6)
	b = le.AppendUint32(b, uint32(total))
	b = le.AppendUint32(b, uint32(iface))
	b = le.AppendUint32(b, uint32(ns>>32))
	b = le.AppendUint32(b, uint32(ns))
	b = le.AppendUint32(b, uint32(len(data)))
	b = le.AppendUint32(b, uint32(origLen))
	b = append(b, data...)
	b = append(b, make([]byte, pad(len(data)))...)
	if comment != "" {
		b = le.AppendUint16(b, 1)
		b = le.AppendUint16(b, uint16(len(comment)))
		b = append(b, comment...)
		b = append(b, make([]byte, pad(len(comment)))...)
		b = le.AppendUint32(b, 0)
	}
	return le.AppendUint32(b, uint32(total))
}

// LegStats are what a recording says of a leg at its end, in an Interface
// Statistics Block (Wireshark: Statistics → Capture File Properties).
type LegStats struct {
	// Start and End bound the capture.
	Start, End time.Time
	// Packets the leg recorded; Drops the packets the kernel dropped.
	Packets, Drops uint64
	// Comment is free text (pftap keeps session metadata known only at
	// the end here).
	Comment string
}

// WriteStats writes an Interface Statistics Block for leg.
func (w *Writer) WriteStats(leg int, st LegStats) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ng == nil || leg < 0 || leg >= len(w.legs) {
		return fmt.Errorf("pcapng: no leg %d", leg)
	}
	_, err := w.out.Write(appendISB(nil, leg, st))
	return err
}

// appendISB encodes an Interface Statistics Block (pcapng section 4.6)
// with nanosecond timestamps (the resolution of every leg's interface).
func appendISB(b []byte, iface int, st LegStats) []byte {
	le := binary.LittleEndian
	var opts []byte
	opt := func(code uint16, v []byte) {
		opts = le.AppendUint16(opts, code)
		opts = le.AppendUint16(opts, uint16(len(v)))
		opts = append(opts, v...)
		opts = append(opts, make([]byte, (4-len(v)&3)&3)...)
	}
	ts := func(t time.Time) []byte {
		ns := uint64(t.UnixNano())
		return le.AppendUint32(le.AppendUint32(nil, uint32(ns>>32)), uint32(ns))
	}
	comment := st.Comment
	if len(comment) > 0xfff0 {
		comment = comment[:0xfff0]
	}
	if comment != "" {
		opt(1, []byte(comment))
	}
	if !st.Start.IsZero() {
		opt(2, ts(st.Start))
	}
	if !st.End.IsZero() {
		opt(3, ts(st.End))
	}
	opt(4, le.AppendUint64(nil, st.Packets))
	opt(5, le.AppendUint64(nil, st.Drops))
	opts = le.AppendUint32(opts, 0) // opt_endofopt
	end := st.End
	if end.IsZero() {
		end = time.Now()
	}
	total := 20 + len(opts) + 4
	b = le.AppendUint32(b, 5)
	b = le.AppendUint32(b, uint32(total))
	b = le.AppendUint32(b, uint32(iface))
	b = append(b, ts(end)...)
	b = append(b, opts...)
	return le.AppendUint32(b, uint32(total))
}

// WriteKeyLog writes a TLS key log (NSS format lines) in a Decryption
// Secrets Block, which must come before the packets it decrypts.
func (w *Writer) WriteKeyLog(keylog []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ng == nil {
		w.pending = append(w.pending, append([]byte(nil), keylog...))
		return nil
	}
	if err := w.ng.WriteDecryptionSecretsBlock(SecretsTLSKeyLog, keylog); err != nil {
		return err
	}
	return w.ng.Flush()
}

// Sync makes everything written so far readable from the file: for a
// compressed file it ends the compressor's current block, and what Gather
// holds goes to the file (a killed run then leaves a file read up to
// there). A plain file that does not gather needs nothing.
func (w *Writer) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	var err error
	if w.sync != nil {
		err = w.sync()
	}
	if w.file != nil {
		err = errors.Join(err, w.file.flush())
	}
	return err
}

// Gather makes a Writer made by NewFileWriter gather what it writes (up
// to 1 MiB, in whole blocks) instead of writing each block as it comes:
// for a writer whose owner calls Sync every so often (pftap's recorder,
// every 50 ms), since a killed process leaves the file as of the last
// Sync. A recording of a 1 GiB transfer written a packet at a time made
// 4.7 million writes. Other writers ignore it.
func (w *Writer) Gather() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.file != nil {
		w.file.mu.Lock()
		w.file.gather = true
		w.file.mu.Unlock()
	}
}

func (g *gatherFile) gathering() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gather
}

// Close flushes and, for files made by Create, closes.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	var err error
	if w.ng != nil {
		err = w.ng.Flush()
	}
	if w.closer != nil {
		err = errors.Join(err, w.closer.Close())
	}
	return err
}
