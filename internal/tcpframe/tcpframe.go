package tcpframe

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// TCP flag bits for Append.
const (
	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagRST = 0x04
	FlagPSH = 0x08
	FlagACK = 0x10
)

// MaxSegment is the largest payload Append can carry in one IPv4
// packet.
const MaxSegment = 65535 - 20 - 20

// Append appends a well-formed Ethernet/IPv4 (or IPv6)/TCP frame to
// buf and returns it: real addresses, the given sequence numbers and flags,
// correct IP and TCP checksums. The MAC addresses are locally administered
// ones derived from the direction. len(payload) must be at most MaxSegment.
func Append(buf []byte, src, dst netip.AddrPort, seq, ack uint32, flags uint8, payload []byte) []byte {
	return append(AppendHeader(buf, src, dst, seq, ack, flags, payload), payload...)
}

// AppendHeader appends the Ethernet, IP and TCP headers of the frame
// Append would make, checksums included, without the payload: the
// frame is the result followed by payload.
func AppendHeader(buf []byte, src, dst netip.AddrPort, seq, ack uint32, flags uint8, payload []byte) []byte {
	return appendTCPHeader(buf, src, dst, seq, ack, flags, payload, len(payload), true)
}

// AppendHeaderNoChecksum is AppendHeader with the TCP checksum left
// zero, which saves reading the payload: for frames that are decoded at
// once, or fixed with FixChecksum before they are written out. The IP
// header checksum is filled in.
func AppendHeaderNoChecksum(buf []byte, src, dst netip.AddrPort, seq, ack uint32, flags uint8, payloadLen int) []byte {
	return appendTCPHeader(buf, src, dst, seq, ack, flags, nil, payloadLen, false)
}

// FixChecksum computes the TCP checksum of an Ethernet/IPv4 or IPv6
// frame in place. It reports false for frames that are not TCP.
func FixChecksum(frame []byte) bool {
	tcp, pseudo, ok := segment(frame)
	if !ok || len(tcp) < 20 {
		return false
	}
	binary.BigEndian.PutUint16(tcp[16:], 0)
	binary.BigEndian.PutUint16(tcp[16:], fold(sum(tcp, pseudo)))
	return true
}

// appendTCPHeader builds the headers for a payload of plen bytes; the TCP
// checksum, when asked for, is taken over payload.
func appendTCPHeader(buf []byte, src, dst netip.AddrPort, seq, ack uint32, flags uint8, payload []byte, plen int, checksum bool) []byte {
	// IPv4-mapped IPv6 addresses stay IPv6 (see BelowTLS).
	s, d := src.Addr(), dst.Addr()
	v6 := s.Is6() || d.Is6()
	if v6 {
		s, d = netip.AddrFrom16(s.As16()), netip.AddrFrom16(d.As16())
	}
	// Ethernet: 02:70:66:xx:xx:xx (pf), low bytes from the ports.
	buf = append(buf, 0x02, 0x70, 0x66, 0, byte(dst.Port()>>8), byte(dst.Port()))
	buf = append(buf, 0x02, 0x70, 0x66, 0, byte(src.Port()>>8), byte(src.Port()))
	tcpLen := 20 + plen
	var pseudo uint32
	if v6 {
		buf = append(buf, 0x86, 0xdd)
		buf = append(buf, 0x60, 0, 0, 0, byte(tcpLen>>8), byte(tcpLen), 6, 64)
		buf = append(buf, s.AsSlice()...)
		buf = append(buf, d.AsSlice()...)
		pseudo = sum(s.AsSlice(), 0) + sum(d.AsSlice(), 0) + uint32(tcpLen) + 6
	} else {
		buf = append(buf, 0x08, 0x00)
		ipStart := len(buf)
		total := 20 + tcpLen
		buf = append(buf, 0x45, 0, byte(total>>8), byte(total), 0, 0, 0x40, 0, 64, 6, 0, 0)
		buf = append(buf, s.AsSlice()...)
		buf = append(buf, d.AsSlice()...)
		binary.BigEndian.PutUint16(buf[ipStart+10:], fold(sum(buf[ipStart:ipStart+20], 0)))
		pseudo = sum(s.AsSlice(), 0) + sum(d.AsSlice(), 0) + uint32(tcpLen) + 6
	}
	tcpStart := len(buf)
	buf = binary.BigEndian.AppendUint16(buf, src.Port())
	buf = binary.BigEndian.AppendUint16(buf, dst.Port())
	buf = binary.BigEndian.AppendUint32(buf, seq)
	buf = binary.BigEndian.AppendUint32(buf, ack)
	buf = append(buf, 5<<4, flags, 0xff, 0xff, 0, 0, 0, 0)
	// The payload's sum is taken in place: its offset in the segment (20)
	// is even, so its 16-bit words line up with the header's.
	if checksum {
		binary.BigEndian.PutUint16(buf[tcpStart+16:], fold(sum(payload, sum(buf[tcpStart:], pseudo))))
	}
	return buf
}

// sum adds b to a ones'-complement sum as 16-bit big-endian words. It
// adds the bytes as little-endian 64-bit words with their carries (a
// ones'-complement sum does not depend on the byte order of its words, so
// the folded result is the big-endian words' with its two bytes swapped),
// 32 bytes per step with no shifts or masks.
func sum(b []byte, s uint32) uint32 {
	var acc, c uint64
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b), c)
		b = b[8:]
	}
	acc, c = bits.Add64(acc, 0, c)
	acc += c // acc wrapped to 0 if c is 1 here: no second carry
	// Fold the 64 bits to 16 (each step's end-around carry added back).
	acc = acc>>32 + acc&0xffffffff
	acc = acc>>32 + acc&0xffffffff
	for len(b) >= 2 {
		acc += uint64(b[0]) | uint64(b[1])<<8
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0])
	}
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	// Back to big-endian words, then s.
	t := uint64(s) + uint64(bits.ReverseBytes16(uint16(acc)))
	return uint32(t>>32 + t&0xffffffff)
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// Segment returns the TCP segment (header and payload) of an Ethernet/IPv4
// or IPv6 frame, in place; ok is false for frames that are not TCP.
func Segment(frame []byte) (tcp []byte, ok bool) {
	tcp, _, ok = segment(frame)
	return tcp, ok
}

// ChecksumOK reports whether a TCP frame's checksum is right.
func ChecksumOK(frame []byte) bool {
	tcp, pseudo, ok := segment(frame)
	return ok && len(tcp) >= 20 && fold(sum(tcp, pseudo)) == 0
}

// segment finds the TCP segment of an Ethernet frame and the pseudo
// header's sum for its checksum.
func segment(f []byte) (tcp []byte, pseudo uint32, ok bool) {
	if len(f) < 14 {
		return nil, 0, false
	}
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		ip := f[14:]
		if len(ip) < 20 || ip[9] != 6 {
			return nil, 0, false
		}
		ihl := int(ip[0]&0xf) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if ihl < 20 || total < ihl || total > len(ip) {
			return nil, 0, false
		}
		tcp = ip[ihl:total]
		return tcp, sum(ip[12:20], 0) + uint32(len(tcp)) + 6, true
	case 0x86dd:
		ip := f[14:]
		if len(ip) < 40 || ip[6] != 6 {
			return nil, 0, false
		}
		n := int(binary.BigEndian.Uint16(ip[4:]))
		if 40+n > len(ip) {
			return nil, 0, false
		}
		tcp = ip[40 : 40+n]
		return tcp, sum(ip[8:40], 0) + uint32(n) + 6, true
	}
	return nil, 0, false
}
