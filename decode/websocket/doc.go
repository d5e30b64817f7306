// Package websocket reads RFC 6455 WebSocket frames from pushed bytes: the
// framing Kubernetes uses for port-forward over WebSocket (the SPDY tunnel
// of kubectl 1.31+, and the older channel protocols).
//
// Frames are unmasked; control frames are checked (at most 125 bytes, never
// fragmented) and message fragmentation is followed. Framing errors are
// sticky, since a WebSocket stream cannot be re-synchronised.
package websocket
