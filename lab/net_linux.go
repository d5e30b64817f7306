//go:build linux

package lab

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultSubnets is where labs take their /24 from when none is given.
var DefaultSubnets = netip.MustParsePrefix("10.250.0.0/16")

// routedOnHost says which route or address of the host covers p, if any.
func routedOnHost(p netip.Prefix) string {
	routes, _ := netlink.RouteList(nil, netlink.FAMILY_V4)
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if q, ok := prefixOf(r.Dst); ok && q.Overlaps(p) && q.Bits() > 0 {
			dev := ""
			if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
				dev = " dev " + l.Attrs().Name
			}
			return "route " + q.String() + dev
		}
	}
	addrs, _ := netlink.AddrList(nil, netlink.FAMILY_V4)
	for _, a := range addrs {
		if q, ok := prefixOf(a.IPNet); ok && q.Overlaps(p) {
			return "address " + q.String()
		}
	}
	return ""
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones).Masked(), true
}

// pickSubnet returns want when the host does not route it, or the first
// free /24 of DefaultSubnets.
func pickSubnet(want netip.Prefix) (netip.Prefix, error) {
	if want.IsValid() {
		if want.Bits() > 24 || !want.Addr().Is4() || !want.Addr().IsPrivate() {
			return netip.Prefix{}, fmt.Errorf("lab subnet %s: need a private IPv4 prefix of /24 or larger", want)
		}
		p := netip.PrefixFrom(want.Addr(), 24).Masked()
		if by := routedOnHost(p); by != "" {
			return netip.Prefix{}, fmt.Errorf("lab subnet %s is already routed on this host (%s): choose another with --subnet", p, by)
		}
		return p, nil
	}
	base := DefaultSubnets.Addr().As4()
	for i := 0; i < 256; i++ {
		c := base
		c[2] = byte(i)
		p := netip.PrefixFrom(netip.AddrFrom4(c), 24)
		if routedOnHost(p) == "" {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free /24 left in %s", DefaultSubnets)
}

// wire creates the three veth pairs between the host and the lab's
// namespaces, with addresses, and the pod's default route.
func wire(a addressing, cpNS, nodeNS, podNS string) error {
	open := func(name string) (netns.NsHandle, *netlink.Handle, error) {
		ns, err := netns.GetFromName(name)
		if err != nil {
			return 0, nil, fmt.Errorf("open netns %s: %w", name, err)
		}
		h, err := netlink.NewHandleAt(ns)
		if err != nil {
			ns.Close()
			return 0, nil, fmt.Errorf("netlink in %s: %w", name, err)
		}
		return ns, h, nil
	}
	cpNs, cpH, err := open(cpNS)
	if err != nil {
		return err
	}
	defer cpNs.Close()
	defer cpH.Close()
	nodeNs, nodeH, err := open(nodeNS)
	if err != nil {
		return err
	}
	defer nodeNs.Close()
	defer nodeH.Close()
	var podNs netns.NsHandle
	var podH *netlink.Handle
	if podNS != "" {
		if podNs, podH, err = open(podNS); err != nil {
			return err
		}
		defer podNs.Close()
		defer podH.Close()
	}
	host, err := netlink.NewHandle()
	if err != nil {
		return err
	}
	defer host.Close()

	type end struct {
		h    *netlink.Handle
		name string
		addr netip.Addr
	}
	link := func(a, b end, peerNs netns.NsHandle) error {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a.name}, PeerName: b.name, PeerNamespace: netlink.NsFd(int(peerNs))}
		if err := a.h.LinkAdd(v); err != nil {
			return fmt.Errorf("veth %s/%s: %w", a.name, b.name, err)
		}
		for _, e := range []end{a, b} {
			l, err := e.h.LinkByName(e.name)
			if err != nil {
				return err
			}
			if err := e.h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: e.addr.AsSlice(), Mask: net.CIDRMask(30, 32)}}); err != nil {
				return fmt.Errorf("address %s on %s: %w", e.addr, e.name, err)
			}
			if err := e.h.LinkSetUp(l); err != nil {
				return err
			}
		}
		return nil
	}
	if err := link(end{host, a.hostLink, a.host}, end{cpH, "eth0", a.cp}, cpNs); err != nil {
		return err
	}
	if err := link(end{cpH, "eth1", a.cpToNode}, end{nodeH, "eth0", a.node}, nodeNs); err != nil {
		return err
	}
	if podNS == "" {
		return nil // the runtime makes the pod's network (containerd through CNI)
	}
	if err := link(end{nodeH, "eth1", a.nodeToPod}, end{podH, "eth0", a.pod}, podNs); err != nil {
		return err
	}
	if err := podH.RouteAdd(&netlink.Route{Gw: a.nodeToPod.AsSlice()}); err != nil {
		return fmt.Errorf("pod default route: %w", err)
	}
	return nil
}

// wireOtherPod links the second pod's namespace to the node (node eth2,
// pod eth0), with its addresses and default route.
func wireOtherPod(a addressing, nodeNS, podNS string) error {
	nodeNs, err := netns.GetFromName(nodeNS)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", nodeNS, err)
	}
	defer nodeNs.Close()
	podNs, err := netns.GetFromName(podNS)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", podNS, err)
	}
	defer podNs.Close()
	nodeH, err := netlink.NewHandleAt(nodeNs)
	if err != nil {
		return err
	}
	defer nodeH.Close()
	podH, err := netlink.NewHandleAt(podNs)
	if err != nil {
		return err
	}
	defer podH.Close()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth2"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(podNs))}
	if err := nodeH.LinkAdd(v); err != nil {
		return fmt.Errorf("veth eth2/eth0 to the second pod: %w", err)
	}
	for _, e := range []struct {
		h    *netlink.Handle
		name string
		addr netip.Addr
	}{{nodeH, "eth2", a.nodeToPod2}, {podH, "eth0", a.pod2}} {
		l, err := e.h.LinkByName(e.name)
		if err != nil {
			return err
		}
		if err := e.h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: e.addr.AsSlice(), Mask: net.CIDRMask(30, 32)}}); err != nil {
			return fmt.Errorf("address %s on %s: %w", e.addr, e.name, err)
		}
		if err := e.h.LinkSetUp(l); err != nil {
			return err
		}
		if lo, err := e.h.LinkByName("lo"); err == nil {
			e.h.LinkSetUp(lo)
		}
	}
	if err := podH.RouteAdd(&netlink.Route{Gw: a.nodeToPod2.AsSlice()}); err != nil {
		return fmt.Errorf("second pod's default route: %w", err)
	}
	return nil
}

// deleteHostLink removes the host end of a lab's veth (gone anyway with
// the control-plane namespace; this covers a half-built lab).
func deleteHostLink(name string) {
	if l, err := netlink.LinkByName(name); err == nil {
		netlink.LinkDel(l)
	}
}

// hostLinks lists host links whose names start with prefix.
func hostLinks(prefix string) []string {
	ls, _ := netlink.LinkList()
	var out []string
	for _, l := range ls {
		if n := l.Attrs().Name; len(n) >= len(prefix) && n[:len(prefix)] == prefix {
			out = append(out, n)
		}
	}
	return out
}

func hostLinksNamed(name string) []string {
	var out []string
	for _, n := range hostLinks(name) {
		if n == name {
			out = append(out, n)
		}
	}
	return out
}

var networkMu sync.Mutex

// lockNetworks serialises subnet choice between labs: a mutex within this
// process and an flock on StateDir/networks.lock across processes.
func lockNetworks() (func(), error) {
	networkMu.Lock()
	if err := os.MkdirAll(StateDir, 0o700); err != nil {
		networkMu.Unlock()
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(StateDir, "networks.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		networkMu.Unlock()
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		networkMu.Unlock()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
		networkMu.Unlock()
	}, nil
}

// hostLinkIndex returns the ifindex of a host link.
func hostLinkIndex(name string) (int, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return 0, err
	}
	return l.Attrs().Index, nil
}

// hostLinkExists reports whether the host still has the link with this
// index (indexes are not reused soon, names are: the next lab on the same
// subnet gets the same name).
func hostLinkExists(index int) bool {
	_, err := netlink.LinkByIndex(index)
	return err == nil
}

func deleteHostLinkIndex(index int) {
	if l, err := netlink.LinkByIndex(index); err == nil {
		netlink.LinkDel(l)
	}
}
