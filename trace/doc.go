// Package trace is what `pftap trace` does against a real cluster.
//
// # What it does
//
// Resolve finds the pod as kubectl port-forward does (pod/NAME, NAME,
// svc/NAME with its target port, workloads by their selector; numeric and
// named ports). Start forwards with pftap's own client (the WebSocket
// tunnel first, SPDY/3.1 when the apiserver refuses it), taps the client's
// leg (L1) below TLS, and runs its frames through a session.Pipeline, the
// one pftap lab uses: each leg decoded where its frames arrive, the events
// in time order, a drain at the end instead of a sleep. Each failure event
// carries its decode.Diagnosis, sharpened by what the agent saw listening in
// the pod.
//
// # The node's legs
//
// With a pftap agent on the pod's node (package agent), the session also
// has L2 on the wire, L3, L4 and the pod's eth0, decoded on the node: their
// events come over TLS into the pipeline's remote legs
// (session.Pipeline.AddRemoteLeg), merged in time order with trace's own,
// their totals and digests at the end. Trace tells the agent what to look
// for as its own port-forward happens (its upgrades on the agent's clock,
// the bytes of its SPDY session: the agent sends nothing of any other
// session). Trace sends nothing to an agent before it presents the pinned
// certificate (Options.AgentFingerprint, or the one remembered for its
// address in Options.KnownAgents), refuses an agent of another protocol
// version in one line (ErrAgentVersion), keeps the session alive with a
// keepalive, puts the node's clock on this machine's
// (timeline.EstimateOffset) and places the TLS leg on each request's path. DeployAgent runs the agent as
// a pod on the target's node and reaches it through the API's
// port-forward; its token serves one session.
//
// # Recording
//
// Options.Write records every leg to pcapng as the session goes, with the
// decoded summaries as packet comments (session.Recorder).
package trace
