package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/pftap/pftap/leg"
)

// Interface describes one capture interface of a recording. In pftap's
// recordings each interface is one leg of the port-forward chain.
type Interface struct {
	Index int
	Name  string
	// Description is the interface's description, without the leg marker.
	Description string
	LinkType    LinkType
	// Leg is the leg of the chain the interface is (leg.Parse).
	Leg leg.ID
	// At is the end of its connection the leg is tapped at (leg.Parse).
	At leg.End
}

// Stats counts what a Reader has read.
type Stats struct {
	Frames int // every captured frame
	TCP    int // frames returned as packets
	NotTCP int // well-formed frames of other protocols, skipped
	// Unsupported counts the frames of link types this package does not
	// read (part of NotTCP); UnsupportedLink is the last such type.
	Unsupported     int
	UnsupportedLink LinkType
	Malformed       int // frames whose headers were cut or inconsistent, skipped
	Truncated       int // TCP packets cut short by the snap length
}

// ErrBadCapture is wrapped by every error about the capture file itself:
// an unknown format, a damaged block, a file cut short.
var ErrBadCapture = errors.New("bad capture file")

// A Reader reads TCP packets from a pcap or pcapng stream.
type Reader struct {
	src    *readAhead
	stops  []func()
	pcap   *pcapFormat
	ng     *pcapgo.NgReader
	link   LinkType
	ifaces []Interface
	stats  Stats
	// Comments holds the comment of the most recent packet that had one
	// (pcapng only); reset on each call of Next.
	Comment string
	section pcapgo.NgSectionInfo
}

// NewReader detects the format from the first bytes of r (pcap in either byte
// order and resolution, or pcapng; either one compressed with zstd or gzip,
// as `pftap lab -w FILE.pcapng.zst` writes) and returns a Reader. The
// Reader reads r ahead of its caller on a goroutine of its own (and
// decompresses on another), so the file's reading overlaps the decoding of
// what was read; Close stops them.
func NewReader(r io.Reader) (rd *Reader, err error) {
	rd = &Reader{}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: unreadable header (%v)", ErrBadCapture, p)
		}
		if err != nil {
			rd.Close()
			rd = nil
		}
	}()
	src := rd.readAhead(r)
	magic, err := src.Peek(4)
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: file is empty or shorter than a header", ErrBadCapture)
		}
		return nil, err
	}
	var dec io.Reader
	switch {
	case magic[0] == 0x1f && magic[1] == 0x8b:
		g, err := gzip.NewReader(src)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrBadCapture, err)
		}
		dec = g
	case binary.LittleEndian.Uint32(magic) == 0xfd2fb528:
		// A hostile frame may ask for a huge window: bounded (pftap writes
		// zstd's fastest level, whose window is a few MiB). With one
		// decoder goroutine the decoder decodes in its Read (on the
		// read-ahead's goroutine) and holds no goroutine of its own.
		z, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderMaxMemory(maxZstdMemory))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", ErrBadCapture, err)
		}
		dec = z.IOReadCloser()
	}
	if dec != nil {
		src = rd.readAhead(cutShort{dec})
		if magic, err = src.Peek(4); err != nil {
			return nil, fmt.Errorf("%w: a compressed file holding no capture (%v)", ErrBadCapture, err)
		}
	}
	rd.src = src
	switch binary.BigEndian.Uint32(magic) {
	case 0x0a0d0d0a:
		rd.ng, err = pcapgo.NewNgReader(&blockGuard{r: src}, pcapgo.NgReaderOptions{WantMixedLinkType: true, SkipUnknownVersion: true})
		if err != nil {
			return nil, fmt.Errorf("%w: pcapng: %v", ErrBadCapture, err)
		}
		rd.section = rd.ng.SectionInfo()
		rd.syncInterfaces()
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1:
		if err := rd.readPcapHeader(); err != nil {
			return nil, fmt.Errorf("%w: pcap: %v", ErrBadCapture, err)
		}
		rd.ifaces = []Interface{{Index: 0, LinkType: rd.link}}
	default:
		return nil, fmt.Errorf("%w: not a pcap or pcapng file (starts with %x)", ErrBadCapture, magic)
	}
	return rd, nil
}

func (r *Reader) readAhead(src io.Reader) *readAhead {
	ra := newReadAhead(src)
	r.stops = append(r.stops, ra.Close)
	return ra
}

// Close stops the goroutines reading the source ahead and lets their
// buffers go; it does not close the source. A Reader read to its end or
// its error needs no Close; one left before that does.
func (r *Reader) Close() {
	if r == nil {
		return
	}
	for _, stop := range r.stops {
		stop()
	}
}

// The pcap format (the classic libpcap file): a 24-byte header, then a
// 16-byte header before each frame.
type pcapFormat struct {
	order   binary.ByteOrder
	nanos   int64 // nanoseconds per unit of the timestamps' fraction
	snaplen uint32
}

// maxRecord bounds one frame of a capture: a damaged or hostile length
// must not make the reader allocate gigabytes. Real snap lengths are at
// most 256 KiB (Wireshark's largest); pftap's captures use 256 KiB too.
const maxRecord = 16 << 20

func (r *Reader) readPcapHeader() error {
	h, err := r.src.take(24)
	if err != nil {
		return err
	}
	f := &pcapFormat{order: binary.LittleEndian, nanos: 1000}
	switch binary.LittleEndian.Uint32(h) {
	case 0xa1b2c3d4:
	case 0xa1b23c4d:
		f.nanos = 1
	case 0xd4c3b2a1:
		f.order = binary.BigEndian
	case 0x4d3cb2a1:
		f.order, f.nanos = binary.BigEndian, 1
	}
	if major, minor := f.order.Uint16(h[4:6]), f.order.Uint16(h[6:8]); major != 2 || minor != 4 {
		return fmt.Errorf("unknown version %d.%d", major, minor)
	}
	f.snaplen = f.order.Uint32(h[16:20])
	// The link type is the low 16 bits; the upper ones carry FCS flags.
	r.link = LinkType(f.order.Uint32(h[20:24]) & 0xffff)
	r.pcap = f
	return nil
}

// year10000 is 10000-01-01 in Unix seconds: timestamps from there on, like
// those before 1970, are damaged (comparing seconds costs less than a
// calendar's year for every packet).
const year10000 = 253402300800

// readPcap returns the next frame of a pcap file: a slice of the
// read-ahead's buffer wherever it can be.
func (r *Reader) readPcap() ([]byte, gopacket.CaptureInfo, error) {
	var ci gopacket.CaptureInfo
	h, err := r.src.take(16)
	if err != nil {
		return nil, ci, err
	}
	f := r.pcap
	sec, frac := f.order.Uint32(h[0:4]), f.order.Uint32(h[4:8])
	ci.Timestamp = time.Unix(int64(sec), int64(frac)*f.nanos).UTC()
	caplen, length := f.order.Uint32(h[8:12]), f.order.Uint32(h[12:16])
	if caplen > maxRecord || caplen > max(f.snaplen, 256<<10) {
		return nil, ci, fmt.Errorf("capture length exceeds snap length: %d > %d", caplen, f.snaplen)
	}
	ci.CaptureLength, ci.Length = int(caplen), int(min(length, 1<<31-1))
	if ci.CaptureLength > ci.Length {
		return nil, ci, fmt.Errorf("capture length exceeds original packet length: %d > %d", ci.CaptureLength, ci.Length)
	}
	data, err := r.src.take(ci.CaptureLength)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return data, ci, err
}

// ErrCompressedCut is the error of a compressed capture whose compressed
// stream ends before its end (a copy cut short, a run killed while it
// wrote): what was read before it is whole.
var ErrCompressedCut = errors.New("the compressed stream ends before its end (truncated capture)")

// cutShort tells a compressed stream cut short from its end: the
// decompressors say io.ErrUnexpectedEOF, which the pcapng reader takes
// for a clean end when it falls between two blocks, as it does when a
// writer flushed them.
type cutShort struct{ r io.Reader }

func (c cutShort) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.ErrUnexpectedEOF {
		err = ErrCompressedCut
	}
	return n, err
}

// Bounds on what a zstd-compressed capture may make the reader hold.
const (
	maxZstdWindow = 64 << 20
	maxZstdMemory = 256 << 20
)

// MaxInterfaces bounds the interfaces of one pcapng section: a reader
// keeps each one, so a file of nothing but interface blocks would
// otherwise cost far more memory than it has bytes. pftap's recordings
// have one interface per leg; captures of real machines, a few hundred at
// most.
const MaxInterfaces = 4096

// blockGuard passes a pcapng stream through, following its block
// headers, and fails it once a section declares more than MaxInterfaces
// interfaces.
type blockGuard struct {
	r      io.Reader
	hdr    [12]byte
	have   int   // bytes of hdr read
	skip   int64 // bytes left of the current block after its header
	order  binary.ByteOrder
	ifaces int
	err    error
}

func (g *blockGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	b := p[:n]
	for len(b) > 0 {
		if g.skip > 0 {
			k := int(min(g.skip, int64(len(b))))
			g.skip -= int64(k)
			b = b[k:]
			continue
		}
		k := copy(g.hdr[g.have:], b)
		g.have += k
		b = b[k:]
		if g.have < len(g.hdr) {
			break
		}
		g.have = 0
		typ := binary.LittleEndian.Uint32(g.hdr[0:4])
		if typ == 0x0a0d0d0a { // section header: its byte order, a new count
			g.order = binary.LittleEndian
			if binary.BigEndian.Uint32(g.hdr[8:12]) == 0x1a2b3c4d {
				g.order = binary.BigEndian
			}
			g.ifaces = 0
		}
		if g.order == nil {
			g.order = binary.LittleEndian
		}
		typ = g.order.Uint32(g.hdr[0:4])
		total := int64(g.order.Uint32(g.hdr[4:8]))
		if typ == 1 {
			g.ifaces++
			if g.ifaces > MaxInterfaces {
				g.err = fmt.Errorf("more than %d interfaces in one section", MaxInterfaces)
				return 0, g.err
			}
		}
		if total < int64(len(g.hdr)) {
			// A damaged length: pcapgo says so; stop following.
			g.skip = 1 << 62
			continue
		}
		g.skip = total - int64(len(g.hdr))
	}
	return n, err
}

func (r *Reader) syncInterfaces() {
	for i := len(r.ifaces); i < r.ng.NInterfaces(); i++ {
		ni, err := r.ng.Interface(i)
		if err != nil {
			break
		}
		l := leg.Parse(ni.Name, ni.Description)
		r.ifaces = append(r.ifaces, Interface{Index: i, Name: ni.Name, Description: l.Description, LinkType: LinkType(ni.LinkType), Leg: l.ID, At: l.At})
	}
}

// Interfaces returns the interfaces seen so far (pcapng can add more as it
// goes; pcap has exactly one).
func (r *Reader) Interfaces() []Interface { return r.ifaces }

// SectionComment returns the comment of the pcapng section header, where
// pftap keeps its session metadata.
func (r *Reader) SectionComment() string { return r.section.Comment }

// LegStats are what a pcapng file's Interface Statistics Block says of an
// interface: the comment, and the packets the capture dropped.
type LegStats struct {
	Comment string
	Drops   uint64
	// OK is false when the file has no statistics for the interface (not
	// yet read, or a capture that ended without writing them).
	OK bool
}

// LegStats returns the statistics of interface i read so far: pftap writes
// them at the end of a recording, so they are known once Next has
// returned io.EOF.
func (r *Reader) LegStats(i int) LegStats {
	if r.ng == nil {
		return LegStats{}
	}
	ni, err := r.ng.Interface(i)
	if err != nil || ni.Statistics.LastUpdate.IsZero() {
		return LegStats{}
	}
	st := LegStats{Comment: ni.Statistics.Comment, OK: true}
	if ni.Statistics.PacketsDropped != pcapgo.NgNoValue64 {
		st.Drops = ni.Statistics.PacketsDropped
	}
	return st
}

// Application returns the application that wrote a pcapng file, if named.
func (r *Reader) Application() string { return r.section.Application }

// Unreadable says, once the file has been read, why a capture that held
// frames gave no packet: they were all of link types this package does not
// read. It is nil otherwise.
func (r *Reader) Unreadable() error {
	st := r.stats
	if st.TCP > 0 || st.Unsupported == 0 || st.Unsupported < st.Frames-st.Malformed {
		return nil
	}
	return fmt.Errorf("%w: all %d frames are of link type %d; pftap reads Ethernet, Linux cooked (SLL, SLL2), raw IP and BSD loopback captures",
		ErrUnsupportedLink, st.Unsupported, st.UnsupportedLink)
}

// Stats returns the counts so far.
func (r *Reader) Stats() Stats { return r.stats }

// Next reads up to the next TCP packet and decodes it into p, skipping
// frames of other protocols and malformed frames (which are counted). The
// payload stays valid until the following call. At the end of the file it
// returns io.EOF; a damaged or truncated file gives an error wrapping
// ErrBadCapture, after which nothing more can be read.
func (r *Reader) Next(p *Packet) (err error) {
	defer func() {
		if e := recover(); e != nil {
			err = fmt.Errorf("%w: damaged record after frame %d (%v)", ErrBadCapture, r.stats.Frames, e)
		}
	}()
	for {
		var data []byte
		var ci gopacket.CaptureInfo
		link := r.link
		r.Comment = ""
		if r.ng != nil {
			var opts pcapgo.NgPacketOptions
			data, ci, opts, err = r.ng.ZeroCopyReadPacketDataWithOptions()
			if err == nil {
				if ci.InterfaceIndex >= len(r.ifaces) {
					r.syncInterfaces()
				}
				if ci.InterfaceIndex < len(r.ifaces) {
					link = r.ifaces[ci.InterfaceIndex].LinkType
				}
				if len(opts.Comments) > 0 {
					r.Comment = opts.Comments[0]
				}
			}
		} else {
			data, ci, err = r.readPcap()
		}
		if err != nil {
			if err == io.EOF {
				return io.EOF
			}
			if err == io.ErrUnexpectedEOF {
				return fmt.Errorf("%w: file ends in the middle of a record after frame %d (truncated capture)", ErrBadCapture, r.stats.Frames)
			}
			return fmt.Errorf("%w: after frame %d: %w", ErrBadCapture, r.stats.Frames, err)
		}
		r.stats.Frames++
		switch err := Decode(link, data, p); {
		case err == nil:
		case errors.Is(err, ErrUnsupportedLink):
			r.stats.NotTCP++
			r.stats.Unsupported++
			r.stats.UnsupportedLink = link
			continue
		case errors.Is(err, ErrNotTCP):
			r.stats.NotTCP++
			continue
		default:
			r.stats.Malformed++
			continue
		}
		p.Time = ci.Timestamp
		if s := p.Time.Unix(); s < 0 || s >= year10000 {
			// A damaged or zero timestamp: keep the packet, at the epoch.
			p.Time = time.Unix(0, 0).UTC()
		}
		p.Interface = ci.InterfaceIndex
		if p.Missing > 0 {
			r.stats.Truncated++
		}
		r.stats.TCP++
		return nil
	}
}

// ReadAll reads every TCP packet left in r, each with a copy of its
// payload, and the interfaces then known. On a damaged or truncated file it
// returns the packets before the damage with the error; io.EOF is not an
// error.
func (r *Reader) ReadAll() ([]Packet, []Interface, error) {
	var out []Packet
	for {
		var p Packet
		if err := r.Next(&p); err != nil {
			if err == io.EOF {
				err = nil
			}
			return out, r.Interfaces(), err
		}
		p.Payload = append([]byte(nil), p.Payload...)
		out = append(out, p)
	}
}
