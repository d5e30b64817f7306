// Package packet reads pcap and pcapng captures and decodes each frame down
// to its TCP segment: link layer (Ethernet with VLAN tags, Linux cooked v1
// and v2, raw IPv4/IPv6, BSD and OpenBSD loopback), IPv4 or IPv6 with
// common extension headers, and TCP.
//
// Frames of other protocols are counted and skipped; frames whose headers
// are cut or inconsistent are counted as malformed and skipped. Damage to
// the file itself (a block cut short, a wrong length) ends reading with an
// error wrapping ErrBadCapture. The reader keeps memory constant: packet
// bytes are reused from one call of Next to the next.
package packet
