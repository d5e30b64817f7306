package capture

import (
	"errors"
	"time"

	"github.com/pftap/pftap/internal/nsenter"

	"github.com/gopacket/gopacket"
)

// Options say what to capture.
type Options struct {
	// Netns is the network namespace: "" for the current one, a name under
	// /run/netns, a path, or "pid:N" for a process's.
	Netns string
	// Interface is an interface name in that namespace, or "any".
	Interface string
	// Filter is a filter expression (see CompileFilter).
	Filter string
	// BufferMiB is the size of the kernel ring; default 64.
	BufferMiB int
}

// Stats are a live capture's kernel counters.
type Stats struct {
	// Packets the kernel handed to the socket (after the filter).
	Packets uint64
	// Drops: packets that passed the filter but found the ring full.
	Drops uint64
}

// Errors.
var (
	// ErrNotSupported is wrapped by the errors of live capture on
	// systems without AF_PACKET; it is nsenter.ErrNotSupported.
	ErrNotSupported = nsenter.ErrNotSupported
	// ErrTimeout is returned by ReadPacket when nothing arrived for a while.
	ErrTimeout = errors.New("no packet yet")
	// ErrNoNamespace: the named network namespace does not exist.
	ErrNoNamespace = errors.New("no such network namespace")
	// ErrNoInterface: the interface does not exist in the namespace.
	ErrNoInterface = errors.New("no such interface")
)

// packetReader is what Drain reads from (a *Source).
type packetReader interface {
	ReadPacket() ([]byte, gopacket.CaptureInfo, error)
}

// Drain reads packets from src and hands each to fn until stop is closed
// or the source fails; quiet periods (ErrTimeout) are waited out. Once
// stop is closed, what the capture already holds is still read, until the
// source is quiet (its poll timeout) or for at most DrainAfterStop: the
// last packets of a session are not lost to a stop that came before the
// reader got to them. data is only valid during the call. It returns the
// error that ended it, or nil when stopped.
func Drain(src packetReader, stop <-chan struct{}, fn func(data []byte, ci gopacket.CaptureInfo)) error {
	var until time.Time
	for {
		if until.IsZero() {
			select {
			case <-stop:
				until = time.Now().Add(DrainAfterStop)
			default:
			}
		} else if time.Now().After(until) {
			return nil
		}
		data, ci, err := src.ReadPacket()
		if errors.Is(err, ErrTimeout) {
			if !until.IsZero() {
				return nil // stopped, and nothing more is held
			}
			continue
		}
		if err != nil {
			return err
		}
		fn(data, ci)
	}
}

// DrainAfterStop bounds how long Drain goes on reading once stopped.
const DrainAfterStop = 500 * time.Millisecond
