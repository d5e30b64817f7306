// Package pfclient is pftap's own port-forward client: client-go's
// tools/portforward, WebSocket tunnel first with a fallback to SPDY as
// kubectl 1.31+ does, with its connection to the apiserver tapped below TLS.
//
// To see the plaintext of a TLS connection it owns, pftap puts a relay in
// front of client-go: client-go speaks plain HTTP to a listener on
// 127.0.0.1 inside pftap, and the relay opens the real TLS connection to the
// apiserver (with the cluster's CA) and copies bytes both ways. The tap sits
// on the relay's TLS connection, so what it records has the connection's
// real addresses and the bytes exactly as they crossed TLS.
package pfclient
