package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// LinkType is a pcap LINKTYPE_ value: how a captured frame begins.
type LinkType uint16

// Link types this package decodes.
const (
	LinkNull     LinkType = 0   // BSD loopback: 4-byte address family, host byte order
	LinkEthernet LinkType = 1   // Ethernet II, with optional 802.1Q tags
	LinkRaw      LinkType = 101 // raw IPv4 or IPv6
	LinkLoop     LinkType = 108 // OpenBSD loopback: 4-byte family, network byte order
	LinkSLL      LinkType = 113 // Linux cooked capture v1
	LinkIPv4     LinkType = 228
	LinkIPv6     LinkType = 229
	LinkSLL2     LinkType = 276 // Linux cooked capture v2
)

func (l LinkType) String() string {
	switch l {
	case LinkNull:
		return "NULL"
	case LinkEthernet:
		return "EN10MB"
	case LinkRaw:
		return "RAW"
	case LinkLoop:
		return "LOOP"
	case LinkSLL:
		return "LINUX_SLL"
	case LinkIPv4:
		return "IPV4"
	case LinkIPv6:
		return "IPV6"
	case LinkSLL2:
		return "LINUX_SLL2"
	}
	return fmt.Sprintf("LINKTYPE_%d", uint16(l))
}

// TCPFlags are the flag bits of a TCP header.
type TCPFlags uint8

// TCP flag bits.
const (
	FIN TCPFlags = 0x01
	SYN TCPFlags = 0x02
	RST TCPFlags = 0x04
	PSH TCPFlags = 0x08
	ACK TCPFlags = 0x10
	URG TCPFlags = 0x20
)

// Has reports whether all bits of v are set.
func (f TCPFlags) Has(v TCPFlags) bool { return f&v == v }

func (f TCPFlags) String() string {
	var s []string
	for _, x := range []struct {
		f TCPFlags
		n string
	}{{SYN, "SYN"}, {FIN, "FIN"}, {RST, "RST"}, {PSH, "PSH"}, {ACK, "ACK"}, {URG, "URG"}} {
		if f.Has(x.f) {
			s = append(s, x.n)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "|")
}

// Packet is one captured TCP segment, decoded down to its payload.
type Packet struct {
	// Time is when the packet was captured.
	Time time.Time
	// Interface is the capture interface index (pcapng), 0 for pcap.
	Interface int
	// Src and Dst are the IP endpoints.
	Src, Dst netip.AddrPort
	Seq, Ack uint32
	Flags    TCPFlags
	Window   uint16
	// Payload is the TCP payload as captured. It aliases the frame bytes.
	Payload []byte
	// Missing is how many payload bytes the IP header announces beyond
	// those captured (a snap length cut the frame short).
	Missing int
}

// Errors that say why a frame was not turned into a Packet. They are not
// faults of the capture: a file may well hold ARP, UDP or ICMP.
var (
	// ErrNotTCP means the frame is a well-formed non-TCP packet.
	ErrNotTCP = errors.New("not a TCP packet")
	// ErrUnsupportedLink means the link type is not one of those above.
	ErrUnsupportedLink = errors.New("unsupported link type")
	// ErrMalformed means the headers are cut short or inconsistent.
	ErrMalformed = errors.New("malformed packet")
)

const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	etherVLAN = 0x8100
	etherQinQ = 0x88a8
)

// Decode parses a captured frame of the given link type into p. p.Time and
// p.Interface are left as they are. p.Payload aliases data.
func Decode(lt LinkType, data []byte, p *Packet) error {
	var ethertype uint16
	switch lt {
	case LinkEthernet:
		if len(data) < 14 {
			return ErrMalformed
		}
		ethertype = binary.BigEndian.Uint16(data[12:14])
		data = data[14:]
		for ethertype == etherVLAN || ethertype == etherQinQ {
			if len(data) < 4 {
				return ErrMalformed
			}
			ethertype = binary.BigEndian.Uint16(data[2:4])
			data = data[4:]
		}
	case LinkSLL:
		if len(data) < 16 {
			return ErrMalformed
		}
		ethertype = binary.BigEndian.Uint16(data[14:16])
		data = data[16:]
	case LinkSLL2:
		if len(data) < 20 {
			return ErrMalformed
		}
		ethertype = binary.BigEndian.Uint16(data[0:2])
		data = data[20:]
	case LinkRaw:
		if len(data) < 1 {
			return ErrMalformed
		}
		switch data[0] >> 4 {
		case 4:
			ethertype = etherIPv4
		case 6:
			ethertype = etherIPv6
		default:
			return ErrMalformed
		}
	case LinkIPv4:
		ethertype = etherIPv4
	case LinkIPv6:
		ethertype = etherIPv6
	case LinkNull, LinkLoop:
		if len(data) < 4 {
			return ErrMalformed
		}
		// The family is in the writer's byte order for NULL; accept both.
		fam := binary.LittleEndian.Uint32(data)
		if lt == LinkLoop || fam > 0xffff {
			fam = binary.BigEndian.Uint32(data)
		}
		data = data[4:]
		switch fam {
		case 2:
			ethertype = etherIPv4
		case 24, 28, 30: // AF_INET6 on the BSDs and macOS
			ethertype = etherIPv6
		default:
			return ErrNotTCP
		}
	default:
		return ErrUnsupportedLink
	}
	switch ethertype {
	case etherIPv4:
		return decodeIPv4(data, p)
	case etherIPv6:
		return decodeIPv6(data, p)
	}
	return ErrNotTCP
}

func decodeIPv4(b []byte, p *Packet) error {
	if len(b) < 20 || b[0]>>4 != 4 {
		return ErrMalformed
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || len(b) < ihl || total < ihl {
		return ErrMalformed
	}
	if b[9] != 6 {
		return ErrNotTCP
	}
	if frag := binary.BigEndian.Uint16(b[6:8]); frag&0x3fff != 0 {
		// A fragment: not reassembled (port-forward traffic is never
		// fragmented on the hops we tap).
		return ErrNotTCP
	}
	src, _ := netip.AddrFromSlice(b[12:16])
	dst, _ := netip.AddrFromSlice(b[16:20])
	// TSO on a capture interface can leave total length 0.
	if total == 0 {
		total = len(b)
	}
	return decodeTCP(b[ihl:], total-ihl, src, dst, p)
}

func decodeIPv6(b []byte, p *Packet) error {
	if len(b) < 40 || b[0]>>4 != 6 {
		return ErrMalformed
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	next := b[6]
	src, _ := netip.AddrFromSlice(b[8:24])
	dst, _ := netip.AddrFromSlice(b[24:40])
	b = b[40:]
	// Walk the common extension headers.
	for {
		switch next {
		case 6:
			if plen == 0 {
				plen = len(b)
			}
			return decodeTCP(b, plen, src, dst, p)
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(b) < 8 {
				return ErrMalformed
			}
			l := (int(b[1]) + 1) * 8
			if len(b) < l {
				return ErrMalformed
			}
			next = b[0]
			b = b[l:]
			plen -= l
		default:
			return ErrNotTCP
		}
	}
}

func decodeTCP(b []byte, segLen int, src, dst netip.Addr, p *Packet) error {
	if len(b) < 20 {
		return ErrMalformed
	}
	off := int(b[12]>>4) * 4
	if off < 20 || len(b) < off || segLen < off {
		return ErrMalformed
	}
	p.Src = netip.AddrPortFrom(src.Unmap(), binary.BigEndian.Uint16(b[0:2]))
	p.Dst = netip.AddrPortFrom(dst.Unmap(), binary.BigEndian.Uint16(b[2:4]))
	p.Seq = binary.BigEndian.Uint32(b[4:8])
	p.Ack = binary.BigEndian.Uint32(b[8:12])
	p.Flags = TCPFlags(b[13])
	p.Window = binary.BigEndian.Uint16(b[14:16])
	want := segLen - off
	got := len(b) - off
	if got > want {
		got = want // Ethernet padding
	}
	p.Payload = b[off : off+got]
	p.Missing = want - got
	return nil
}
