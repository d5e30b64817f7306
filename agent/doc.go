// Package agent is `pftap agent`, the node side of `pftap trace`: on the
// node that hosts the pod it taps the legs only the node can see (the
// apiserver's TLS connection to the kubelet, the kubelet's plaintext to the
// runtime's streaming server on the node's lo, the pod's lo, and the pod's
// eth0 as the witness), decodes them there with the decoder pftap lab runs
// on its legs, and sends trace what trace renders and correlates (events,
// TLS records, counters, each leg's totals and digests) for trace's own
// port-forward only, over a TLS connection that trace opens and
// authenticates with a token.
//
// # The protocol (version 2, ProtocolVersion)
//
// Trace sends one JSON line (Request, with its Version). The agent answers
// with probes (a Hello line with Probe set, then that many bytes, which
// trace reads and acknowledges with a Request line with Probed set: see
// self.go), then one JSON line (Hello, with its Version; an agent of another
// version, or one that refuses the request, says why in Hello.Error), and
// from then on both sides send messages (wire.go): a type byte, a length
// and a payload. Trace sends its clock (MsgPing, answered by MsgPong), its
// upgrades (MsgUpgrade) and the bytes of its SPDY sessions (MsgSPDY,
// MsgGrid) as they happen, a MsgKeepalive every KeepaliveEvery, and MsgEnd
// when it is done. The agent sends MsgEvent for each event of trace's
// session, MsgRecords with the TLS records of L2 on the wire, MsgStatus
// every 50 ms (bytes, kernel drops, what it left out, what is still open),
// MsgFrame for each frame when trace records (Request.Frames), and after
// MsgEnd a MsgFinal per leg, then MsgDone. An agent that hears nothing
// for Silence ends the session.
//
// # Only trace's session
//
// Each new connection on a leg is held back on the node until the agent
// knows whether it belongs to trace's port-forward (match.go, decide.go);
// what does not is left out, counted, never sent. An agent started with
// Options.AllowNodeWide may send a trace that asks for it
// (Request.NodeWide) every connection instead.
//
// # Never lossy without saying so
//
// The captures never wait for trace: events always go, frames for trace -w
// that the link cannot carry go with their headers only (FrameShortened,
// counted). Kernel drops are counted per leg, and a gap on a leg that
// dropped says so.
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
