package session

import (
	"fmt"
	"io"
	"os"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/decode/packet"
	"github.com/pftap/pftap/leg"
	"github.com/pftap/pftap/timeline"
)

// A File is a recording read back as a session (`pftap replay`): its
// legs, what its metadata says, and its packets decoded as one stream.
type File struct {
	path     string
	f        *os.File
	rd       *packet.Reader
	first    packet.Packet
	firstErr error
	// Start is what the recording said as it started; IsLab says a lab
	// session wrote it (otherwise Start is empty).
	Start Meta
	IsLab bool
	// Legs are the recording's interfaces, by index (named "ifN" when
	// they have no name).
	Legs []leg.Leg
}

// OpenFile opens a recording (pcapng, or pcap) and reads up to its first
// packet, which its legs are known by.
func OpenFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	rd, err := packet.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r := &File{path: path, f: f, rd: rd}
	r.Start, r.IsLab = DecodeMeta(rd.SectionComment())
	// A pcapng's interface blocks may come after its header: peek.
	r.firstErr = rd.Next(&r.first)
	for _, i := range rd.Interfaces() {
		name := i.Name
		if name == "" {
			name = fmt.Sprintf("if%d", i.Index)
		}
		r.Legs = append(r.Legs, leg.Leg{ID: i.Leg, Name: name, Description: i.Description, At: i.At})
	}
	return r, nil
}

// Close stops reading the file and closes it.
func (r *File) Close() error {
	r.rd.Close()
	return r.f.Close()
}

// Decode decodes every packet with one Decoder, correlating as it goes,
// and hands each event to emit in the file's order. An unreadable or cut
// short file is an error, after what could be read was decoded.
func (r *File) Decode(verbosity int, emit func(*decode.Event)) (Decoded, error) {
	res := Decoded{Correlator: timeline.NewCorrelator()}
	res.Correlator.Digests = true
	d := decode.NewDecoder(decode.Options{Verbosity: verbosity, Chunks: res.Correlator.Chunk,
		Records: func(rec *decode.TLSRecord) { res.Records = append(res.Records, *rec) }}, emit)
	var ifs []packet.Interface
	for i, l := range r.Legs {
		ifs = append(ifs, packet.Interface{Index: i, Name: l.Name, Leg: l.ID, At: l.At})
	}
	d.SetInterfaces(ifs)
	err := r.firstErr
	if err == nil {
		d.Add(&r.first)
		var p packet.Packet
		for err = r.rd.Next(&p); err == nil; err = r.rd.Next(&p) {
			d.Add(&p)
		}
	}
	if err == io.EOF {
		err = r.rd.Unreadable()
	}
	if err != nil {
		err = fmt.Errorf("%s: %w", r.path, err)
	}
	res.Summary = d.Finish()
	return res, err
}

// End is what a recording written as its session went says of the end
// (the requests' results, the app's log), with each leg's drops, once
// Decode has read the last packet; ok is false for one cut short (its
// writer killed) or made before.
func (r *File) End() (m Meta, ok bool) {
	m, ok = DecodeMeta(r.rd.LegStats(0).Comment)
	if !ok {
		return Meta{}, false
	}
	m.Drops = make([]uint64, len(r.Legs))
	for i := range r.Legs {
		m.Drops[i] = r.rd.LegStats(i).Drops
	}
	return m, true
}
