//go:build linux

package capture

import (
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/afpacket"
	"golang.org/x/sys/unix"

	"github.com/pftap/pftap/internal/nsenter"
)

// Source is a live capture on one interface (or every interface, "any") of
// one network namespace, through an AF_PACKET socket with a TPACKET_V3 ring
// and a kernel BPF filter. Pure Go: no libpcap.
type Source struct {
	tp     *afpacket.TPacket
	opts   Options
	filter *Filter
	mu     sync.Mutex
	ifaces map[int]string
	closed bool
	// attached is when the kernel filter was attached: a packet the ring
	// took before (between the socket's bind and SetBPF) passed no filter
	// and is filtered here.
	attached time.Time
	early    *Filter // the filter without what only the kernel can test
}

// Open starts a capture. The socket is created inside the namespace and
// keeps capturing there whichever thread reads it.
func Open(opts Options) (*Source, error) {
	if opts.Interface == "" {
		opts.Interface = "any"
	}
	if opts.BufferMiB <= 0 {
		opts.BufferMiB = 64
	}
	f, err := CompileFilter(opts.Filter, true)
	if err != nil {
		return nil, err
	}
	raw, err := f.Raw()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFilter, err)
	}
	early, err := CompileFilter(opts.Filter, false)
	if err != nil {
		return nil, err
	}
	s := &Source{opts: opts, filter: f, early: early, ifaces: map[int]string{}}
	if opts.Netns != "" {
		if _, err := os.Stat(nsenter.Path(opts.Netns)); err != nil {
			return nil, fmt.Errorf("no network namespace %q (%s): %w", opts.Netns, nsenter.Path(opts.Netns), ErrNoNamespace)
		}
	}
	err = nsenter.Do(opts.Netns, func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		found := opts.Interface == "any"
		for _, i := range ifs {
			s.ifaces[i.Index] = i.Name
			if i.Name == opts.Interface {
				found = true
			}
		}
		if !found {
			var names []string
			for _, i := range ifs {
				names = append(names, i.Name)
			}
			sort.Strings(names)
			return fmt.Errorf("no interface %q in %s (it has %v): %w", opts.Interface, nsName(opts.Netns), names, ErrNoInterface)
		}
		topts := []any{afpacket.OptFrameSize(1 << 17), afpacket.OptBlockSize(1 << 20), afpacket.OptNumBlocks(opts.BufferMiB),
			afpacket.OptBlockTimeout(10 * time.Millisecond), afpacket.OptPollTimeout(100 * time.Millisecond),
			afpacket.OptTPacketVersion(afpacket.TPacketVersion3)}
		if opts.Interface != "any" {
			topts = append(topts, afpacket.OptInterface(opts.Interface))
		}
		tp, err := afpacket.NewTPacket(topts...)
		if err != nil {
			if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
				return fmt.Errorf("open packet socket: %w (capturing needs CAP_NET_RAW: run as root)", err)
			}
			return fmt.Errorf("open packet socket on %s: %w", opts.Interface, err)
		}
		if err := tp.SetBPF(raw); err != nil {
			tp.Close()
			return fmt.Errorf("attach filter: %w", err)
		}
		s.attached = time.Now().Add(time.Millisecond)
		if opts.Interface == "lo" {
			ignoreOutgoing(tp)
		}
		s.tp = tp
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func nsName(ref string) string {
	if ref == "" {
		return "the current network namespace"
	}
	return "network namespace " + ref
}

// ReadPacket returns the next packet, or ErrTimeout after a quiet 100 ms
// so that callers can check for cancellation. data is valid until the next
// call. ci.InterfaceIndex is the kernel's ifindex (see InterfaceName).
func (s *Source) ReadPacket() (data []byte, ci gopacket.CaptureInfo, err error) {
	for {
		data, ci, err = s.tp.ZeroCopyReadPacketData()
		if errors.Is(err, afpacket.ErrTimeout) {
			err = ErrTimeout
		}
		// Taken before the kernel's filter was attached (an IPv6 router
		// solicitation or MLD report of an interface just up): filtered
		// here, as the kernel would have.
		if err == nil && !ci.Timestamp.After(s.attached) && !s.early.Match(data) {
			continue
		}
		return data, ci, err
	}
}

// InterfaceName returns the name of the interface with the kernel index i
// in the capture's namespace.
func (s *Source) InterfaceName(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.ifaces[i]; ok {
		return n
	}
	return fmt.Sprintf("if%d", i)
}

// Stats returns the packets the kernel passed the filter and those it had
// to drop (ring full) since the last call.
func (s *Source) Stats() (Stats, error) {
	_, st, err := s.tp.SocketStats()
	if err != nil {
		return Stats{}, err
	}
	return Stats{Packets: uint64(st.Packets()), Drops: uint64(st.Drops())}, nil
}

// Filter returns the compiled filter.
func (s *Source) Filter() *Filter { return s.filter }

// Close releases the socket and its ring.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.tp.Close()
	}
	return nil
}

// packetIgnoreOutgoing is PACKET_IGNORE_OUTGOING (Linux 4.20).
const packetIgnoreOutgoing = 23

// ignoreOutgoing asks the kernel not to hand the socket the outgoing copy of
// each packet: on lo every packet is seen twice, going out and coming in,
// and the filter keeps only the incoming one anyway (it still does, for
// kernels without the option). Skipping the outgoing copies spares the
// kernel a clone and a filter run per packet on the forwarded path.
// gopacket's TPacket does not expose its socket, so it is read from the
// unexported field; when that is not possible nothing changes.
func ignoreOutgoing(tp *afpacket.TPacket) {
	f := reflect.ValueOf(tp).Elem().FieldByName("fd")
	if !f.IsValid() || f.Kind() != reflect.Int {
		return
	}
	unix.SetsockoptInt(int(f.Int()), unix.SOL_PACKET, packetIgnoreOutgoing, 1)
}
