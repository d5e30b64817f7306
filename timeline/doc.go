// Package timeline turns decoded port-forward events into what a person
// reads: the timeline, the path of each request across the legs, and the
// clocks of the machines that captured them.
//
// # Rendering
//
// TextWriter prints aligned lines (colour on terminals), each failure with
// its diagnosis once per request; JSONWriter prints one object per line
// (docs/json.md); the HTML writer draws a sequence diagram with a lane per
// leg.
//
// # Correlation
//
// A Correlator takes the decoder's chunks (decode.Options.Chunks) and
// follows each port-forward request across the legs of a chain: on the SPDY
// legs by stream and requestID, on the others (the user's connection, the
// pod's lo) by payload and timing, aligning each direction's bytes by
// offset whatever the framing, so that the time at which byte k appears on
// each leg gives each hop's latency (Hops). AddTLSLegs places a leg seen
// only as TLS records (L2 on the wire) on each request's path by its
// records' times and sizes; EstimateOffset estimates the offset between two
// machines' clocks from the requests both saw, with its uncertainty.
//
// The package is pure: no clock, no I/O of its own (TestDependencyRules).
package timeline
