package timeline

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pftap/pftap/decode"
)

// ANSI colours used on terminals.
const (
	reset  = "\x1b[0m"
	dim    = "\x1b[2m"
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	blue   = "\x1b[34m"
	cyan   = "\x1b[36m"
	bold   = "\x1b[1m"
)

// TextWriter renders events as aligned lines: time since the first event,
// connection, leg, direction and the event's summary.
type TextWriter struct {
	w     io.Writer
	color bool
	start time.Time
	// LegWidth is the width of the leg column; 0 hides the column.
	LegWidth int
	// FitLegs widens the leg column to the widest leg the events name
	// (8 to 24 characters), showing it once events name legs.
	FitLegs bool
	// MaskTimes prints "+T" instead of times, for stable golden output.
	MaskTimes bool
	// PerRequest lists every request's per-hop latency also when there
	// are AggregateFrom or more (which are otherwise summed up).
	PerRequest bool
	setups     setupCosts
	err        error
	// explained are the diagnoses printed, by request.
	explained map[string]bool
}

// NewTextWriter returns a TextWriter. color adds ANSI colours (for
// terminals only).
func NewTextWriter(w io.Writer, color bool) *TextWriter {
	return &TextWriter{w: w, color: color}
}

// Err returns the first write error.
func (tw *TextWriter) Err() error { return tw.err }

// Since is t on the timeline's clock, as its rows print it: seconds since
// the first event, or "+T" with MaskTimes (or before any event).
func (tw *TextWriter) Since(t time.Time) string {
	if tw.MaskTimes || tw.start.IsZero() {
		return "+T"
	}
	return fmt.Sprintf("%+.6f", t.Sub(tw.start).Seconds())
}

func (tw *TextWriter) paint(c, s string) string {
	if !tw.color || c == "" {
		return s
	}
	return c + s + reset
}

func kindColor(e *decode.Event) string {
	switch e.Kind {
	case decode.KindDecodeError, decode.KindStreamError:
		return red
	case decode.KindWarning, decode.KindGap:
		return yellow
	case decode.KindRequest:
		if e.Error != nil && *e.Error != "" || strings.Contains(e.Text, "reset:") {
			return bold + red
		}
		return green
	case decode.KindHTTPRequest, decode.KindHTTPResponse:
		if e.Kind == decode.KindHTTPResponse && e.Status >= 400 {
			return red
		}
		return cyan
	case decode.KindStream:
		if e.Type == "RST_STREAM" {
			return red
		}
		return blue
	case decode.KindSPDY, decode.KindWS, decode.KindTCP, decode.KindConn, decode.KindClose, decode.KindPing:
		return dim
	}
	return ""
}

// Event writes one event line.
func (tw *TextWriter) Event(e *decode.Event) {
	if tw.err != nil {
		return
	}
	if tw.setups == nil {
		tw.setups = setupCosts{}
	}
	tw.setups.note(e)
	if n := utf8.RuneCountInString(e.Leg); tw.FitLegs && n > tw.LegWidth {
		tw.LegWidth = min(max(n, 8), 24)
	}
	if tw.start.IsZero() {
		tw.start = e.Time
	}
	var b strings.Builder
	if tw.MaskTimes {
		b.WriteString("         +T")
	} else {
		fmt.Fprintf(&b, "%+11.6f", e.Time.Sub(tw.start).Seconds())
	}
	fmt.Fprintf(&b, "  #%-2d", e.Conn)
	if tw.LegWidth > 0 {
		leg := []rune(e.Leg)
		if len(leg) > tw.LegWidth {
			leg = leg[:tw.LegWidth]
		}
		b.WriteByte(' ')
		b.WriteString(string(leg))
		b.WriteString(strings.Repeat(" ", tw.LegWidth-len(leg)))
	}
	arrow := "   "
	switch e.Dir {
	case decode.ToServer:
		arrow = " → "
	case decode.FromServer:
		arrow = " ← "
	}
	b.WriteString(arrow)
	b.WriteByte(' ')
	b.WriteString(tw.paint(kindColor(e), e.Text))
	b.WriteByte('\n')
	if e.Diagnosis != "" && !tw.diagnosed(e) {
		b.WriteString("           ↳ ")
		b.WriteString(e.Diagnosis)
		b.WriteByte('\n')
	}
	_, tw.err = io.WriteString(tw.w, b.String())
}

// diagnosed reports whether e's diagnosis was already printed for the same
// request (the same error crosses every leg: it is explained once, where it
// is first seen), and remembers it.
func (tw *TextWriter) diagnosed(e *decode.Event) bool {
	key := e.Diagnosis
	if e.RequestID != nil {
		key += "\x00" + *e.RequestID
	}
	if tw.explained == nil {
		tw.explained = map[string]bool{}
	}
	if tw.explained[key] {
		return true
	}
	tw.explained[key] = true
	return false
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Summary writes the closing totals.
func (tw *TextWriter) Summary(s decode.Summary) {
	if tw.err != nil {
		return
	}
	var b strings.Builder
	b.WriteString("\n")
	b.WriteString(tw.paint(bold, "summary:"))
	fmt.Fprintf(&b, " %d packets, %d connections, ", s.Packets, s.Connections)
	if s.FailedUpgrade > 0 {
		// Asked for, made, refused: never a count that reads as a part
		// of another.
		fmt.Fprintf(&b, "%d port-forward upgrades asked (%d made, ", s.Upgrades+s.FailedUpgrade, s.Upgrades)
		b.WriteString(tw.paint(red, fmt.Sprintf("%d refused", s.FailedUpgrade)))
		b.WriteString(")")
	} else {
		fmt.Fprintf(&b, "%d port-forward upgrades", s.Upgrades)
	}
	fmt.Fprintf(&b, ", %d %s", s.Requests, plural(s.Requests, "request", "requests"))
	if s.RequestErrors > 0 {
		b.WriteString(tw.paint(red, fmt.Sprintf(" (%d failed)", s.RequestErrors)))
	}
	if s.RequestLegs > 1 {
		fmt.Fprintf(&b, " seen on %d legs", s.RequestLegs)
	}
	fmt.Fprintf(&b, "\n         %d bytes to pods, %d bytes from pods, %d SPDY frames", s.BytesToPod, s.BytesFromPod, s.SPDYFrames)
	if !tw.MaskTimes && !s.Start.IsZero() {
		fmt.Fprintf(&b, ", %.3fs captured", s.End.Sub(s.Start).Seconds())
	}
	b.WriteString("\n         ")
	problems := fmt.Sprintf("%d gaps (%d bytes), %d warnings, %d decode errors", s.Gaps, s.GapBytes, s.Warnings, s.DecodeErrors)
	if s.Gaps+s.Warnings+s.DecodeErrors > 0 {
		problems = tw.paint(yellow, problems)
	}
	b.WriteString(problems)
	b.WriteString("\n")
	_, tw.err = io.WriteString(tw.w, b.String())
}

// Hops writes the per-hop latency of each request (see HopsText); requests
// seen on one leg only are left out.
func (tw *TextWriter) Hops(hs []Hops) {
	if tw.err != nil {
		return
	}
	var multi []Hops
	for _, h := range hs {
		if len(h.ToPod.Legs) > 1 || len(h.FromPod.Legs) > 1 {
			multi = append(multi, h)
		}
	}
	if len(multi) < AggregateFrom || tw.PerRequest {
		if _, tw.err = io.WriteString(tw.w, HopsText(multi, tw.MaskTimes)); tw.err != nil {
			return
		}
	}
	if len(multi) >= AggregateFrom {
		_, tw.err = io.WriteString(tw.w, AggregateText(Aggregates(multi, tw.setups), tw.MaskTimes))
	}
}
