package capture

import (
	"encoding/hex"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/pftap/pftap/internal/nsenter"
)

// Listeners lists the TCP sockets listening in a network namespace ("":
// this process's own), IPv4 and IPv6: what a pod or a node serves on.
func Listeners(netns string) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	read := func() error {
		for _, f := range []string{"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"} {
			data, err := os.ReadFile(f)
			if err != nil {
				if f == "/proc/thread-self/net/tcp6" {
					continue // no IPv6
				}
				return err
			}
			out = append(out, parseListeners(string(data))...)
		}
		return nil
	}
	return out, inNetns(netns, read)
}

// inNetns runs fn in a network namespace ("": this process's own).
func inNetns(netns string, fn func() error) error {
	if netns == "" {
		return fn()
	}
	return nsenter.Do(netns, fn)
}

// parseListeners reads /proc/net/tcp{,6}: the LISTEN sockets' local
// addresses.
func parseListeners(data string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, line := range strings.Split(data, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "0A" { // LISTEN
			continue
		}
		addr, port, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(port, 16, 16)
		if err != nil {
			continue
		}
		raw, err := hex.DecodeString(addr)
		if err != nil || (len(raw) != 4 && len(raw) != 16) {
			continue
		}
		// The kernel prints each 32-bit word in host (little-endian) order.
		for i := 0; i+4 <= len(raw); i += 4 {
			raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
		}
		ip, _ := netip.AddrFromSlice(raw)
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(p)))
	}
	return out
}
