package capture

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// frame builds an Ethernet frame with an IPv4 or IPv6 header and a TCP or
// UDP header.
func frame(src, dst string, proto byte, sport, dport uint16, fragOff uint16) []byte {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	b := make([]byte, 14)
	l4 := make([]byte, 20)
	binary.BigEndian.PutUint16(l4[0:], sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	if s.Is4() {
		binary.BigEndian.PutUint16(b[12:], 0x0800)
		ip := make([]byte, 24) // with 4 bytes of options: ports move
		ip[0] = 0x46
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)+len(l4)))
		binary.BigEndian.PutUint16(ip[6:], fragOff)
		ip[9] = proto
		copy(ip[12:], s.AsSlice())
		copy(ip[16:], d.AsSlice())
		return append(append(b, ip...), l4...)
	}
	binary.BigEndian.PutUint16(b[12:], 0x86dd)
	ip := make([]byte, 40)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
	ip[6] = proto
	copy(ip[8:], s.AsSlice())
	copy(ip[24:], d.AsSlice())
	return append(append(b, ip...), l4...)
}

func TestFilterMatches(t *testing.T) {
	tcp4 := frame("10.250.0.1", "10.250.0.2", 6, 40000, 80, 0)
	udp4 := frame("10.250.0.1", "10.250.0.2", 17, 53, 5353, 0)
	tcp6 := frame("fd00::1", "fd00::2", 6, 40000, 10250, 0)
	frag := frame("10.250.0.1", "10.250.0.2", 6, 40000, 80, 0x0010)
	arp := make([]byte, 42)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	tests := []struct {
		expr string
		want map[string]bool
	}{
		{"", map[string]bool{"tcp4": true, "udp4": true, "tcp6": true, "arp": true, "frag": true}},
		{"tcp", map[string]bool{"tcp4": true, "tcp6": true, "frag": true}},
		{"udp", map[string]bool{"udp4": true}},
		{"tcp port 80", map[string]bool{"tcp4": true}},
		{"port 80", map[string]bool{"tcp4": true}},
		{"dst port 80", map[string]bool{"tcp4": true}},
		{"src port 80", map[string]bool{}},
		{"tcp port 10250", map[string]bool{"tcp6": true}},
		{"udp port 53", map[string]bool{"udp4": true}},
		{"tcp port 53", map[string]bool{}},
		{"host 10.250.0.2", map[string]bool{"tcp4": true, "udp4": true, "frag": true}},
		{"src host 10.250.0.2", map[string]bool{}},
		{"host fd00::1", map[string]bool{"tcp6": true}},
		{"dst host fd00::1", map[string]bool{}},
		{"not tcp", map[string]bool{"udp4": true, "arp": true}},
		{"tcp port 80 or tcp port 10250", map[string]bool{"tcp4": true, "tcp6": true}},
		{"ip and not (port 80 || port 53)", map[string]bool{"frag": true}},
		{"ip6 && tcp", map[string]bool{"tcp6": true}},
	}
	frames := map[string][]byte{"tcp4": tcp4, "udp4": udp4, "tcp6": tcp6, "frag": frag, "arp": arp}
	for _, tt := range tests {
		f, err := CompileFilter(tt.expr, false)
		if err != nil {
			t.Fatalf("%q: %v", tt.expr, err)
		}
		if _, err := f.Raw(); err != nil {
			t.Fatalf("%q: assemble: %v", tt.expr, err)
		}
		for name, fr := range frames {
			if got := f.Match(fr); got != tt.want[name] {
				t.Errorf("%q on %s: %v, want %v", tt.expr, name, got, tt.want[name])
			}
		}
	}
}

func TestFilterErrors(t *testing.T) {
	for _, expr := range []string{"port", "port 70000", "host nope", "tcp host 1.2.3.4", "(tcp", "tcp and", "icmp", "tcp port 80 garbage"} {
		if _, err := CompileFilter(expr, false); !errors.Is(err, ErrFilter) {
			t.Errorf("%q: %v, want ErrFilter", expr, err)
		}
	}
}
