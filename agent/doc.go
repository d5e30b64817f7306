// Package agent is `pftap agent`, the node side of `pftap trace`: on the
// node that hosts the pod it taps the legs only the node can see (the
// apiserver's TLS connection to the kubelet, the kubelet's plaintext to the
// runtime's streaming server on the node's lo, the pod's lo, and the pod's
// eth0 as the witness) and streams them to trace as pcapng, one interface
// per leg, over a TLS connection that trace opens and authenticates with a
// token.
//
// The protocol: trace sends one JSON line (Request). The agent answers
// with probes (a Hello line with Probe set, then that many bytes, which
// trace reads and acknowledges with a Request line with Probed set: see
// self.go), then one JSON line (Hello) and then a pcapng stream until trace
// closes the connection. Meanwhile trace sends a newline every
// KeepaliveEvery; an agent that hears nothing for Silence ends the session.
//
// # Never tapping itself
//
// The agent leaves its own listening port, and the connections that carry
// each session's stream back to trace, out of every leg's kernel filter
// (see self.go): a deployed agent is reached through the very legs it taps.
//
// # Lifetime
//
// Options.ExitWhenIdle ends an agent no session has used for a while,
// Options.Once one whose single session ended; a session whose trace went
// silent for Silence ends too.
package agent
