// Package tcpstream reassembles captured TCP segments into the ordered byte
// stream of each direction of each connection.
//
// It handles segments out of order (queued up to MaxPendingBytes per
// direction), retransmissions and overlaps (trimmed), sequence number
// wraparound, connections whose handshake was not captured, and the reuse
// of a 4-tuple by a new connection. A hole it cannot fill is reported as a
// gap at its stream offset, never skipped silently: when the receiver's ACK
// shows that the bytes were delivered but not captured, when the queue
// overflows, or when the direction or the capture ends.
package tcpstream
