// Package pfclient is pftap's own port-forward client: client-go's
// tools/portforward, WebSocket tunnel first with a fallback to SPDY as
// kubectl 1.31+ does, with its connection to the apiserver tapped below TLS.
//
// To see the plaintext of a TLS connection it owns, pftap makes the
// connections client-go uses itself: client-go is told the apiserver
// speaks plain HTTP and is given a dialer that reaches the apiserver
// (through the kubeconfig's or the environment's proxy, if any), makes the
// TLS handshake with the cluster's CA and client certificate, and returns
// the TLS connection, wrapped by the tap. The tap sees the bytes exactly as
// they cross TLS, on the connection's real addresses, in the same read and
// write client-go makes: no relay, no extra copy. When client-go closes a
// connection, it says close_notify and reads the apiserver's end of it, as
// the kernel keeps a closed socket for its peer's FIN, so that the tap
// records the close of both directions.
package pfclient
