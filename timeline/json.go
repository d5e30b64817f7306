package timeline

import (
	"encoding/json"
	"io"

	"github.com/pftap/pftap/decode"
)

// Sink is what both writers, TextWriter and JSONWriter, take: the events
// as they come, then the hops, the diagnoses and the totals.
type Sink interface {
	Event(*decode.Event)
	Hops([]Hops)
	Diagnoses([]decode.Finding)
	Summary(decode.Summary)
	Err() error
}

// JSONWriter writes one JSON object per line: every event, then a
// {"kind":"summary"} object. docs/json.md describes the fields.
type JSONWriter struct {
	enc    *json.Encoder
	setups setupCosts
	err    error
}

// NewJSONWriter returns a JSONWriter on w.
func NewJSONWriter(w io.Writer) *JSONWriter {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &JSONWriter{enc: enc}
}

// Err returns the first write error.
func (jw *JSONWriter) Err() error { return jw.err }

// Event writes one event.
func (jw *JSONWriter) Event(e *decode.Event) {
	if jw.setups == nil {
		jw.setups = setupCosts{}
	}
	jw.setups.note(e)
	if jw.err == nil {
		jw.err = jw.enc.Encode(e)
	}
}

// Summary writes the totals as {"kind":"summary", ...}.
func (jw *JSONWriter) Summary(s decode.Summary) {
	if jw.err == nil {
		jw.err = jw.enc.Encode(struct {
			Kind string `json:"kind"`
			decode.Summary
		}{"summary", s})
	}
}

// Hops writes one {"kind":"hops", ...} object per request and, for two or
// more requests seen on several legs, one {"kind":"aggregate", ...}.
func (jw *JSONWriter) Hops(hs []Hops) {
	for _, h := range hs {
		if jw.err != nil {
			return
		}
		jw.err = jw.enc.Encode(struct {
			Kind string `json:"kind"`
			Hops
		}{"hops", h})
	}
	if a := Aggregates(hs, jw.setups); a.Requests >= 2 && jw.err == nil {
		jw.err = jw.enc.Encode(struct {
			Kind string `json:"kind"`
			Aggregate
		}{"aggregate", a})
	}
}

// Object writes any other object, such as the lab app's log.
func (jw *JSONWriter) Object(v any) {
	if jw.err == nil {
		jw.err = jw.enc.Encode(v)
	}
}
