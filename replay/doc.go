// Package replay makes recorded port-forward sessions replayable, so that a
// test of a port-forward client or server runs against a recorded peer
// with no cluster.
//
// Open reads a recording (a pcapng from `pftap lab -w`, or any pcap or
// pcapng of port-forward traffic) into a Session: legs, connections, HTTP
// exchanges, port-forward sessions with every SPDY frame, and requests.
// Reading is pure: no root, no network, no clock.
//
// StartAPIServer starts a recorded apiserver for client tests: a TLS server
// that answers discovery and the pod as recorded, accepts the port-forward
// upgrade the client asks for (SPDY/3.1, or WebSocket with the SPDY
// tunnel), plays back the recorded server side of every request the client
// opens, and compares what the client sends with what the recorded client
// sent. PlayClient is the other way round, for server tests: it plays the
// recorded client side against a port-forward server and compares the
// server's answers.
//
// Comparison is Semantic by default (the same stream types, ports and
// bytes, whatever the request IDs and chunking; HTTP Date headers masked)
// or Strict (the same request IDs and the same DATA frames, byte for
// byte). Mismatches are readable diffs. Package replaytest runs both in Go
// tests, reporting through the test.
package replay
