// Package session is the tapped session: what `pftap lab` and `pftap
// trace` share between their taps and the user.
//
// # Recording
//
// A Recorder writes a session to pcapng as it goes, one interface per leg
// (each with its leg.ID), in time order a little behind the taps, with the
// decoded one-line summaries as packet comments and credentials redacted,
// so that a session killed in the middle leaves a file Wireshark, tshark
// and pftap read. Meta is what a recording says of its session besides its
// packets (the chain it ran on, the requests' results, the app's log, the
// drops), written where it becomes known and read back by `pftap replay`.
//
// The live multi-leg decoder, the request sender and the session itself
// still live in cmd/pftap (labrun.go, livedecode.go) and in package trace;
// they move here next.
package session
