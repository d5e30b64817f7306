package timeline

import (
	"fmt"
	"io"
	"strings"

	"github.com/pftap/pftap/decode"
)

// Diagnoses writes the session's findings (decode.Diagnoser): one line
// each, its explanation after ↳, and the frames that show it with their
// times on the timeline's clock. Nothing when there are none.
func (tw *TextWriter) Diagnoses(fs []decode.Finding) {
	if tw.err != nil || len(fs) == 0 {
		return
	}
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("\n")
		b.WriteString(tw.paint(bold+red, "diagnosis:"))
		fmt.Fprintf(&b, " %s (at %s", f.Text, f.Hop)
		if f.RequestID != "" {
			fmt.Fprintf(&b, ", request %s", f.RequestID)
		}
		b.WriteString(")\n")
		if f.Explanation != "" {
			fmt.Fprintf(&b, "  ↳ %s\n", f.Explanation)
		}
		for _, ev := range f.Evidence {
			fmt.Fprintf(&b, "    %11s  %-22s %s\n", tw.Since(ev.Time), ev.Leg, ev.Text)
		}
	}
	_, tw.err = io.WriteString(tw.w, b.String())
}

// Diagnoses writes one {"kind":"diagnosis"} object per finding.
func (jw *JSONWriter) Diagnoses(fs []decode.Finding) {
	for _, f := range fs {
		var ts any
		if len(f.Evidence) > 0 {
			ts = f.Evidence[0].Time
		}
		jw.Object(struct {
			TS   any    `json:"ts,omitempty"`
			Kind string `json:"kind"`
			decode.Finding
		}{ts, "diagnosis", f})
	}
}
