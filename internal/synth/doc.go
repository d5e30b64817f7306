// Package synth writes synthetic but protocol-exact port-forward captures
// of any size, for benchmarks: an HTTP upgrade to SPDY/3.1, the port-forward
// streams (frames encoded by moby/spdystream, the encoder kubectl uses), and
// a bulk transfer from the pod in 32 KiB DATA frames, cut into Ethernet/IPv4/
// TCP segments of an MSS with an ACK every second segment, as on a real
// link.
package synth
