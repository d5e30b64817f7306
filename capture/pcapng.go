package capture

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/pftap/pftap/decode/packet"
)

// Leg describes one interface of a recording: in pftap's recordings, one
// hop of the port-forward chain.
type Leg struct {
	// Name is shown by Wireshark as the interface name, such as
	// "L4 pod lo (netns pftap-1-pod)".
	Name string
	// Description says what the leg connects, with endpoints.
	Description string
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
// is readable up to its last packet even when the process is killed.
type Writer struct {
	mu      sync.Mutex
	out     io.Writer
	closer  io.Closer
	comment string
	ng      *pcapgo.NgWriter
	legs    []Leg
	pending [][]byte // key logs given before the first leg
	closed  bool
}

// Create creates (or truncates) path with mode 0600, since recordings can
// hold secrets, and returns a Writer on it. comment becomes the section
// header's comment.
func Create(path, comment string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	w := NewWriter(f, comment)
	w.closer = f
	return w, nil
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
	return pcapgo.NgInterface{Name: l.Name, Description: l.Description, LinkType: lt,
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
	ci := gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(frame), Length: origLen, InterfaceIndex: leg}
	var err error
	if comment != "" {
		err = w.ng.WritePacketWithOptions(ci, frame, pcapgo.NgPacketOptions{Comments: []string{comment}})
	} else {
		err = w.ng.WritePacket(ci, frame)
	}
	if err != nil {
		return err
	}
	return w.ng.Flush()
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
