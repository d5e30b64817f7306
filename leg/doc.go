// Package leg names the legs of the port-forward chain: a typed ID for each
// hop, which travels with every event, every JSON object and every
// interface of a recording, so that nothing has to recover a leg from its
// display name.
//
// # The chain
//
//	user ── the user's connection to the port-forward's local port
//	proxy ── the client's connection to its HTTPS proxy (below the proxy's TLS: the CONNECT, then L1's TLS records)
//	L1   ── client → apiserver (plaintext, tapped below TLS)
//	L2   ── apiserver → kubelet (plaintext, tapped below TLS)
//	L2-wire ── the same connection on the wire (TLS records only)
//	L3   ── kubelet → the runtime's streaming server (the node's lo)
//	L4   ── the runtime (or socat) → the app (the pod's lo)
//	witness ── the pod's eth0, which port-forward never crosses
//
// # In recordings
//
// A pcapng interface carries its leg as a marker at the end of its
// description, " [pftap leg L4]" (Marker, Parse). Recordings made before
// pftap wrote the marker are read by their interface names, in one place
// (FromLegacyName).
package leg
