// Package session is the tapped session: what `pftap lab` and `pftap
// trace` share between their taps and the user, and what `pftap replay`
// reads back.
//
// # The pipeline
//
// A Pipeline takes the frames of every leg, whichever tap made them (a
// packet capture's ring, an in-process tap below TLS, a pftap agent's
// stream), and decodes each leg where its frames arrive (Live, over
// decode.LegSet), so that nothing is copied to be decoded later; Events
// hands the events over in time order a little behind the taps. With a
// recording, the Recorder writes every frame to pcapng as the session goes
// (time order, one interface per leg with its leg.ID, the decoded
// summaries as packet comments, credentials redacted), so that a session
// killed in the middle leaves a file Wireshark, tshark and pftap read. A
// session ends with a drain (Pipeline.Drain): it waits, bounded, until the
// decoding has seen every request end and every connection close on every
// leg, instead of sleeping.
//
// # What the jobs share
//
// The jobs themselves live elsewhere: package labrun is `pftap lab`'s
// (the lab built, tapped and forwarded through), package trace is `pftap
// trace`'s; both run their taps into a Pipeline. What both say of a
// session is here: its Description (the header, the Facts of what ran,
// the app's log as AppRequest, the client's own words), the Client, the
// Requests sent through the local port (Send) and their RequestResults.
// The session imports neither the lab nor the agent nor the clients.
//
// # Recordings
//
// Meta is what a recording says of its session besides its packets (the
// chain it ran on, the requests' results, the app's log, the drops),
// written where it becomes known; File reads a recording back as a
// session for `pftap replay`.
package session
