package capture

import (
	"errors"

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
// or the source fails; quiet periods (ErrTimeout) are waited out. data is
// only valid during the call. It returns the error that ended it, or nil
// when stopped.
func Drain(src packetReader, stop <-chan struct{}, fn func(data []byte, ci gopacket.CaptureInfo)) error {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		data, ci, err := src.ReadPacket()
		if errors.Is(err, ErrTimeout) {
			continue
		}
		if err != nil {
			return err
		}
		fn(data, ci)
	}
}
