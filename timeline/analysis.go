package timeline

import (
	"time"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/leg"
)

// An Analysis is what every command makes of a session beyond printing its
// events, in one place: who made each 101 (Upgrades), the session's
// diagnosis (decode.Diagnoser), and at the end the requests followed over
// every leg (the TLS legs placed, a remote machine's legs put on this
// one's clock), the findings and the totals. pftap decode, lab, replay and
// trace feed it every event (Note) and render its Result.
type Analysis struct {
	upgrades Upgrades
	diag     *decode.Diagnoser
	keep     bool
	kept     []*decode.Event
	first    string
}

// AnalysisOptions say what an Analysis knows of the chain besides its
// events.
type AnalysisOptions struct {
	// KeepEvents keeps every event for the Result (an HTML diagram).
	KeepEvents bool
	// NoRuntime, Path: Upgrades'.
	NoRuntime bool
	Path      func(websocket bool) (maker, why string)
}

// NewAnalysis returns an Analysis that has seen nothing.
func NewAnalysis(o AnalysisOptions) *Analysis {
	return &Analysis{upgrades: Upgrades{NoRuntime: o.NoRuntime, Path: o.Path}, diag: decode.NewDiagnoser(), keep: o.KeepEvents}
}

// Note takes one event, in time order, before it is rendered: a 101 gets
// its UpgradeBy, and the event is evidence for the diagnosis.
func (a *Analysis) Note(e *decode.Event) {
	a.upgrades.Note(e)
	a.diag.Note(e)
	if a.first == "" && e.Diagnosis != "" {
		a.first = e.Diagnosis
	}
	if a.keep {
		a.kept = append(a.kept, e)
	}
}

// NoteClient takes a line the port-forward client printed (kubectl's
// output, client-go's errors) at t: evidence that no leg shows.
func (a *Analysis) NoteClient(t time.Time, client, line string) { a.diag.NoteClient(t, client, line) }

// Findings are the diagnoses of what was noted so far (a session that
// failed before its end).
func (a *Analysis) Findings(captured int) []decode.Finding {
	a.diag.Captured = captured
	return a.diag.Findings()
}

// Decoded is what decoding a session left beside its events, as an
// Analysis takes it.
type Decoded struct {
	Summary    decode.Summary
	Correlator *Correlator
	// Records, when set, are the TLS records of the legs seen only as
	// TLS, which place those legs on each request's path.
	Records []decode.TLSRecord
	// Remote, when set, says which legs were timed by another machine
	// (an agent's): its clock's offset is estimated from the requests seen
	// both ways and those legs are put on this machine's clock.
	Remote func(leg.ID) bool
	// Legs is how many legs were captured (a diagnosis from one leg says
	// what it cannot tell).
	Legs int
}

// AnalysisResult is a session analysed.
type AnalysisResult struct {
	// Hops are the requests over every leg, in chain order, on this
	// machine's clock.
	Hops []Hops
	// Clock is the estimate of the remote legs' clock, when ClockOK.
	Clock   ClockOffset
	ClockOK bool
	// Findings name what failed, once for the session.
	Findings []decode.Finding
	Summary  decode.Summary
	// Events are every event noted, with KeepEvents.
	Events []*decode.Event
	// FirstDiagnosis is the first event's diagnosis, when there was one.
	FirstDiagnosis string
}

// Result analyses the session once every event was noted.
func (a *Analysis) Result(d Decoded) AnalysisResult {
	r := AnalysisResult{Summary: d.Summary, Events: a.kept, FirstDiagnosis: a.first}
	var spdyLeg func(string) bool
	if d.Correlator != nil {
		r.Hops, spdyLeg = d.Correlator.Result(), d.Correlator.SPDYLeg
	}
	var shift time.Duration
	if d.Remote != nil {
		if est, ok := EstimateOffset(r.Hops, d.Remote); ok {
			r.Clock, r.ClockOK, shift = est, true, est.Offset
			r.Hops = ShiftLegs(r.Hops, d.Remote, est.Offset)
		}
	}
	// The TLS legs by their records' times, on the hops' clock (a remote
	// leg's records shifted as its legs were; without an estimate, a
	// remote TLS leg cannot be placed).
	if d.Records != nil && spdyLeg != nil && (d.Remote == nil || r.ClockOK) {
		r.Hops = AddTLSLegs(r.Hops, d.Records, shift, spdyLeg)
	}
	r.Findings = a.Findings(d.Legs)
	return r
}
