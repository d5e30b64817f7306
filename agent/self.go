package agent

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// The agent is often reached through the very legs it taps: a deployed
// agent is a host-network pod that trace port-forwards to, so its pcapng
// stream crosses the apiserver's TLS connection to the kubelet (L2) and the
// kubelet's SPDY connection to the runtime (L3) on its way back to trace.
// Tapped, every packet it sends would be captured and sent again: a loop
// that grows without bound. The agent therefore leaves out of every leg,
// before any capture opens:
//
//   - its own listening port (the runtime's connection to it, and a direct
//     connection from trace), and that port is never taken for a runtime
//     streaming port;
//   - the connections that carry its session, found by a probe: it sends
//     trace a known number of bytes, twice, trace acknowledges each after
//     reading them, and the node's TCP sockets whose byte counters
//     (sock_diag's tcp_info) moved by at least that much both times, and
//     not much more, are the session's own L2 and L3 connections.

// Probe sizes: two distinct sizes, so that an unrelated bulk transfer
// moving about as much in the same instant is not taken for the agent's
// own connection.
var probeSizes = []int{64 << 10, 160 << 10}

// Tuple is one TCP connection, its endpoints in a canonical order (the
// smaller first), so that both sockets of a connection on the same
// machine give the same Tuple.
type Tuple struct{ A, B netip.AddrPort }

func makeTuple(x, y netip.AddrPort) Tuple {
	if y.Addr().Less(x.Addr()) || (y.Addr() == x.Addr() && y.Port() < x.Port()) {
		x, y = y, x
	}
	return Tuple{x, y}
}

func (t Tuple) String() string { return t.A.String() + " ⇄ " + t.B.String() }

// filter is the capture filter that leaves the connection out.
func (t Tuple) filter() string {
	return fmt.Sprintf("not (host %s and port %d and host %s and port %d)", t.A.Addr(), t.A.Port(), t.B.Addr(), t.B.Port())
}

// counters are the bytes a socket has sent (and had acknowledged) and
// received.
type counters struct{ acked, received uint64 }

// sock is one socket: its local and its remote address.
type sock struct{ local, remote netip.AddrPort }

func (s sock) tuple() Tuple { return makeTuple(s.local, s.remote) }

// moved is how much more a connection carried in either direction
// between two snapshots: the largest change of any of its sockets'
// counters. A socket absent from before (new) counts from zero.
func moved(before, after map[sock]counters, t Tuple) uint64 {
	var m uint64
	for _, s := range []sock{{t.A, t.B}, {t.B, t.A}} {
		a, ok := after[s]
		if !ok {
			continue
		}
		b := before[s]
		if a.acked >= b.acked && a.acked-b.acked > m {
			m = a.acked - b.acked
		}
		if a.received >= b.received && a.received-b.received > m {
			m = a.received - b.received
		}
	}
	return m
}

// ownConnections returns the connections that carried every probe: each
// probe i of size sizes[i] moved them at least sizes[i] bytes (the
// framing of each hop only adds to it) and at most twice that plus 64 KiB.
// snaps holds a snapshot before the first probe and one after each.
func ownConnections(snaps []map[sock]counters, sizes []int) []Tuple {
	if len(snaps) != len(sizes)+1 {
		return nil
	}
	seen := map[Tuple]bool{}
	var own []Tuple
	for s := range snaps[len(snaps)-1] {
		t := s.tuple()
		if seen[t] {
			continue
		}
		seen[t] = true
		ok := true
		for i, n := range sizes {
			m := moved(snaps[i], snaps[i+1], t)
			if m < uint64(n) || m > 2*uint64(n)+64<<10 {
				ok = false
				break
			}
		}
		if ok {
			own = append(own, t)
		}
	}
	sort.Slice(own, func(i, j int) bool { return own[i].String() < own[j].String() })
	return own
}

// withExclusions adds to a capture filter the connections and the port
// it must never capture.
func withExclusions(filter string, own []Tuple, port int) string {
	parts := []string{"(" + filter + ")"}
	if port != 0 {
		parts = append(parts, fmt.Sprintf("not port %d", port))
	}
	for _, t := range own {
		parts = append(parts, t.filter())
	}
	return strings.Join(parts, " and ")
}
