// Package labrun is `pftap lab`'s job: a lab session.
//
// StartLab builds a lab (package lab) for the LabOptions, with a Fault
// when one is asked for (Faults: the failures users report, each by its
// real mechanism), opens its taps (Taps says which are left out, to
// measure what they cost) into a session.Pipeline and starts the
// recording; Run forwards with pftap's client or kubectl, sends the
// requests through the local port (session.Send), drains and tears the
// lab down; Close finishes the recording with what is known only at the
// end (session.EndMeta). The session's Description, with its header and
// the chain's diagram (ChainDiagram), says what ran.
//
// # Leaves
//
// Everything a lab session makes is removed when it ends, on every signal,
// and by `pftap lab clean` after a SIGKILL (package lab).
package labrun
