// Package capture taps the hops of a port-forward chain.
//
// # Live capture
//
// Open captures on an interface of any network namespace: a name under
// /run/netns, a path, "pid:N", or the current one; FindNetnsByIP finds a
// pod's namespace from its IP. The socket is a pure-Go AF_PACKET socket
// with a TPACKET_V3 ring (no libpcap), opened on a thread that entered the
// namespace (package internal/nsenter), so one static binary can be copied
// to a node. A filter expression (CompileFilter) becomes a classic BPF
// program in the kernel, which also drops the outgoing copy of every
// packet on lo: the kernel hands those to packet sockets twice, and
// tcpdump shows one. Stats reports the kernel's drop counter.
//
// # The in-process tap
//
// Tap wraps a connection pftap owns (its own port-forward client, under
// TLS) and records every read and write as Ethernet/IPv4/TCP frames with
// the real addresses and consistent sequence numbers (tcpframe.Append), so
// that the decoder, tshark and Wireshark read them as the TCP stream it was.
//
// # Recordings
//
// Writer writes pcapng: one interface per leg with its name and
// description, nanosecond timestamps, a comment per packet, session
// metadata in the section header, TLS key logs in Decryption Secrets
// Blocks. It is safe for concurrent use and writes every block through to
// the file at once, so a killed process leaves a file readable up to its
// last packet. Create makes files with mode 0600: recordings can hold
// secrets.
//
// Live capture is Linux only; elsewhere Open returns ErrNotSupported. The
// filter compiler, the tap and the writer work everywhere.
package capture
