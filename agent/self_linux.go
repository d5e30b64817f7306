//go:build linux

package agent

import (
	"errors"
	"net"
	"net/netip"

	"github.com/pftap/pftap/internal/nsenter"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// snapshot reads the byte counters of the TCP connections in a network
// namespace ("": the agent's own) that have an endpoint on one of ports.
func snapshot(netns string, ports map[int]bool) (map[sock]counters, error) {
	out := map[sock]counters{}
	read := func() error {
		for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
			socks, err := netlink.SocketDiagTCPInfo(fam)
			if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
				if fam == unix.AF_INET6 {
					continue // no IPv6
				}
				return err
			}
			for _, s := range socks {
				if s.InetDiagMsg == nil || s.TCPInfo == nil {
					continue
				}
				id := s.InetDiagMsg.ID
				if !ports[int(id.SourcePort)] && !ports[int(id.DestinationPort)] {
					continue
				}
				src, ok1 := addrPort(id.Source, id.SourcePort)
				dst, ok2 := addrPort(id.Destination, id.DestinationPort)
				if !ok1 || !ok2 || dst.Port() == 0 {
					continue // listening
				}
				out[sock{src, dst}] = counters{acked: s.TCPInfo.Bytes_acked, received: s.TCPInfo.Bytes_received}
			}
		}
		return nil
	}
	return out, inNetns(netns, read)
}

func addrPort(ip net.IP, port uint16) (netip.AddrPort, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), port), true
}

// inNetns runs fn in a network namespace ("": the agent's own).
func inNetns(netns string, fn func() error) error {
	if netns == "" {
		return fn()
	}
	return nsenter.Do(netns, fn)
}
