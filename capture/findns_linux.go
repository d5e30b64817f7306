//go:build linux

package capture

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pftap/pftap/internal/nsenter"
)

// NetnsMatch says where an address was found.
type NetnsMatch struct {
	// Ref names the namespace for Options.Netns: a /run/netns name, or
	// "pid:N".
	Ref string
	// Interface holds the address.
	Interface string
	// How explains how the namespace was found, for messages.
	How string
}

// FindNetnsByIP looks for the network namespace in which an interface has
// the address ip (a pod's IP): first the named namespaces under /run/netns,
// then the distinct namespaces of running processes (/proc/*/ns/net), as a
// node's container runtime leaves them.
func FindNetnsByIP(ip netip.Addr) (*NetnsMatch, error) {
	seen := map[uint64]bool{}
	var cands []NetnsMatch
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			cands = append(cands, NetnsMatch{Ref: e.Name(), How: "named network namespace /run/netns/" + e.Name()})
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	sort.Slice(procs, func(i, j int) bool { return pidOf(procs[i]) < pidOf(procs[j]) })
	for _, p := range procs {
		pid := strings.TrimPrefix(p, "/proc/")
		cands = append(cands, NetnsMatch{Ref: "pid:" + pid, How: "network namespace of process " + pid + procName(pid)})
	}
	for _, c := range cands {
		var st unix.Stat_t
		if err := unix.Stat(nsenter.Path(c.Ref), &st); err != nil || seen[st.Ino] {
			continue
		}
		seen[st.Ino] = true
		var found string
		err := nsenter.Do(c.Ref, func() error {
			ifs, err := net.Interfaces()
			if err != nil {
				return err
			}
			for _, i := range ifs {
				addrs, _ := i.Addrs()
				for _, a := range addrs {
					if pfx, err := netip.ParsePrefix(a.String()); err == nil && pfx.Addr() == ip {
						found = i.Name
						return nil
					}
				}
			}
			return nil
		})
		if err == nil && found != "" {
			c.Interface = found
			c.How += fmt.Sprintf(": %s has %s", found, ip)
			return &c, nil
		}
	}
	return nil, fmt.Errorf("no network namespace on this machine has an interface with %s (looked in /run/netns and %d processes' namespaces)", ip, len(seen))
}

func pidOf(p string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(p, "/proc/"))
	return n
}

func procName(pid string) string {
	b, err := os.ReadFile("/proc/" + pid + "/comm")
	if err != nil {
		return ""
	}
	return " (" + strings.TrimSpace(string(b)) + ")"
}
