package decode

import (
	"io"

	"github.com/pftap/pftap/decode/packet"
)

// DecodeCapture reads a pcap or pcapng stream to its end and emits its
// events. When the file is damaged or cut short, everything before the
// damage is still decoded and emitted (and summarised) before the error,
// which wraps packet.ErrBadCapture, is returned.
func DecodeCapture(r io.Reader, opts Options, emit func(*Event)) (Summary, error) {
	rd, err := packet.NewReader(r)
	if err != nil {
		return Summary{}, err
	}
	defer rd.Close()
	d := NewDecoder(opts, emit)
	d.SetInterfaces(rd.Interfaces())
	var p packet.Packet
	known := len(rd.Interfaces())
	for {
		err = rd.Next(&p)
		if err != nil {
			break
		}
		if n := len(rd.Interfaces()); n != known {
			d.SetInterfaces(rd.Interfaces())
			known = n
		}
		d.Add(&p)
	}
	sum := d.Finish()
	if err == io.EOF {
		err = nil
	}
	if err == nil {
		err = rd.Unreadable()
	}
	return sum, err
}
