//go:build !linux

package capture

import (
	"fmt"
	"net/netip"

	"github.com/gopacket/gopacket"
)

// Source is a live capture; it exists only on Linux.
type Source struct{}

// Open fails with an error wrapping ErrNotSupported.
func Open(opts Options) (*Source, error) { return nil, errLive }

// ReadPacket fails with an error wrapping ErrNotSupported.
func (s *Source) ReadPacket() ([]byte, gopacket.CaptureInfo, error) {
	return nil, gopacket.CaptureInfo{}, errLive
}

// InterfaceName returns "".
func (s *Source) InterfaceName(int) string { return "" }

// Stats fails with an error wrapping ErrNotSupported.
func (s *Source) Stats() (Stats, error) { return Stats{}, errLive }

// Filter returns nil.
func (s *Source) Filter() *Filter { return nil }

// Close does nothing.
func (s *Source) Close() error { return nil }

// NetnsMatch says where an address was found.
type NetnsMatch struct{ Ref, Interface, How string }

// FindNetnsByIP fails with ErrNotSupported.
func FindNetnsByIP(ip netip.Addr) (*NetnsMatch, error) { return nil, ErrNotSupported }

// errLive says what needs Linux.
var errLive = fmt.Errorf("live capture (AF_PACKET): %w", ErrNotSupported)
