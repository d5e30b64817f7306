// Package tcpframe is the one place pftap builds Ethernet/IPv4 (or
// IPv6)/TCP frames: the in-process taps' frames below TLS, the checksums
// the recorder fills in after redaction, the synthetic captures of the
// benchmarks and the tests' hand-made connections. Only the standard
// library: a leaf every package may use.
package tcpframe
