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
//
// A Reader reads its source ahead on a goroutine of its own, a few 1 MiB
// buffers ahead of the parsing (and decompresses zstd or gzip on another),
// so a file's reading runs beside its decoding. pcap records are parsed by
// this package and returned as slices of those buffers; pcapng goes
// through gopacket's reader.
package packet
