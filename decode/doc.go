// Package decode turns packet captures of kubectl port-forward traffic into
// events at the level a person debugging port-forward thinks in.
//
// # Layers
//
// A capture is read by package packet (pcap or pcapng, Ethernet, Linux
// cooked, raw IP and BSD loopback links, IPv4 and IPv6), reassembled into
// ordered byte streams by package tcpstream (reordering, retransmission,
// overlap; holes reported as gaps at their offsets), and then each
// connection is followed here:
//
//   - HTTP/1.1: requests and responses, including keep-alive API calls; a
//     request with "Connection: Upgrade" holds the connection until its
//     answer: 101 switches both directions, anything else is reported as a
//     refused upgrade (with X-Accepted-Stream-Protocol-Versions).
//   - SPDY/3.1 after "Upgrade: SPDY/3.1", with package spdy.
//   - WebSocket after "Upgrade: websocket" (package websocket): with the
//     subprotocol SPDY/3.1+portforward.k8s.io (or v2.portforward.k8s.io) the
//     binary messages are joined into the SPDY byte stream, whatever their
//     boundaries; with v4.channel.k8s.io or v4.base64.channel.k8s.io each
//     message is a channel byte and data, the server starting each channel
//     with its port (little endian).
//   - TLS: record types and sizes only.
//   - The port-forward protocol on top of SPDY: an error and a data stream
//     per forwarded connection, paired by their requestID header (or by
//     order and port for clients that send none), their lifecycle, bytes in
//     each direction, the error stream's text, pings and GOAWAY.
//
// # Events
//
// A Decoder calls its emit function with one *Event per thing seen, in
// capture order. Verbosity 0 gives port-forward events; 1 adds every SPDY
// frame (and TLS record); 2 adds WebSocket frames and TCP segments. Each
// port-forward request ends with a KindRequest event that totals it.
// docs/json.md describes the JSON form.
//
// # Bad input
//
// Nothing in this package panics on its input. A damaged capture file ends
// DecodeCapture with an error wrapping packet.ErrBadCapture after every
// event before the damage was emitted. Bytes that break a protocol become
// KindDecodeError events and that direction is not decoded further; a
// capture that began mid-session gives KindWarning events and is decoded as
// far as it can be (SPDY DATA is still framed when header blocks cannot be
// inflated).
//
// Decoding is pure: no clock, no network, no root; the same capture always
// gives the same events.
package decode
