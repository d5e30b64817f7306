package timeline

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/leg"
)

// LegRow is one leg of a session's legs table.
type LegRow struct {
	Name    string
	ID      leg.ID
	Summary decode.LegSummary
	// Drops are the kernel's drops of the leg's capture.
	Drops uint64
	// Agent is what the agent counted on one of its legs (nil for a leg
	// tapped here).
	Agent *AgentCounts
}

// AgentCounts are what an agent left out of one of its legs, and what it
// shortened for the recording.
type AgentCounts struct {
	LeftOutConns   int
	LeftOutPackets uint64
	Ambiguous      int
	Shortened      uint64
}

// LegRows are a session's legs in the order of the chain (by their IDs;
// legs without one last, in their order), each with its totals from sum
// and its drops.
func LegRows(sum decode.Summary, names []string, ids []leg.ID, drops []uint64) []LegRow {
	rows := make([]LegRow, len(names))
	for i, n := range names {
		rows[i].Name = n
		if i < len(ids) {
			rows[i].ID = ids[i]
		}
		if i < len(drops) {
			rows[i].Drops = drops[i]
		}
		if ls := sum.Legs[n]; ls != nil {
			rows[i].Summary = *ls
			if rows[i].ID == "" {
				rows[i].ID = ls.ID
			}
		}
	}
	order := func(r LegRow) int {
		if o := r.ID.Order(); o >= 0 {
			return o
		}
		return 100
	}
	sort.SliceStable(rows, func(a, b int) bool { return order(rows[a]) < order(rows[b]) })
	return rows
}

// LegsTable prints the legs table: packets, bytes, SPDY frames and drops
// per leg, what a leg lost or carried again, and, for an agent's legs,
// what the agent left out of them (counts, never contents), what it sent
// without payload, and what it sent.
func (tw *TextWriter) LegsTable(rows []LegRow, agentSent int64) {
	if tw.err != nil {
		return
	}
	var b strings.Builder
	b.WriteString("\nlegs:\n")
	var drops uint64
	for _, r := range rows {
		ls := r.Summary
		drops += r.Drops
		note := ""
		if r.Drops > 0 {
			note = fmt.Sprintf("  DROPPED %d packets: this leg has gaps", r.Drops)
		}
		if ls.Gaps > 0 {
			note += fmt.Sprintf("  %d gaps", ls.Gaps)
		}
		if ls.Retransmitted > 0 || ls.RetransmittedBytes > 0 {
			note += fmt.Sprintf("  %d retransmitted segments (%d bytes again)", ls.Retransmitted, ls.RetransmittedBytes)
		}
		fmt.Fprintf(&b, "  %-28s %6d packets %10d bytes %5d SPDY frames %4d drops%s\n", r.Name, ls.Packets, ls.Bytes, ls.SPDYFrames, r.Drops, note)
	}
	var left, short []string
	for _, r := range rows {
		a := r.Agent
		if a == nil {
			continue
		}
		if a.LeftOutConns > 0 {
			l := fmt.Sprintf("%s %s (%s)", r.Name, counted(a.LeftOutConns, "connection", "connections"), counted(int(a.LeftOutPackets), "packet", "packets"))
			if a.Ambiguous > 0 {
				l += fmt.Sprintf(", %d of them not to be told apart from this session's", a.Ambiguous)
			}
			left = append(left, l)
		}
		if a.Shortened > 0 {
			short = append(short, r.Name+" "+counted(int(a.Shortened), "frame", "frames"))
		}
	}
	if len(left) > 0 {
		b.WriteString("\nthe agent left out what was not this session's (counts, not contents):\n")
		for _, l := range left {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	if len(short) > 0 {
		fmt.Fprintf(&b, "\nthe recording has these frames without their payloads (headers kept), the link from the agent being too slow for them: %s\n", strings.Join(short, ", "))
	}
	if drops > 0 {
		fmt.Fprintf(&b, "\nWARNING: the kernel dropped %d packets; the legs above that lost packets have gaps\n", drops)
	}
	if agentSent > 0 {
		fmt.Fprintf(&b, "the agent sent trace %s\n", fmtSize(agentSent))
	}
	tw.write(b.String())
}

// Legs writes the legs table as {"kind":"legs"}.
func (jw *JSONWriter) Legs(rows []LegRow, agentSent int64) {
	var legs []map[string]any
	for _, r := range rows {
		ls := r.Summary
		m := map[string]any{"leg": r.Name, "packets": ls.Packets, "bytes": ls.Bytes, "spdy_frames": ls.SPDYFrames, "gaps": ls.Gaps, "drops": r.Drops}
		if r.ID != leg.Unknown {
			m["leg_id"] = r.ID
		}
		if a := r.Agent; a != nil {
			m["left_out_connections"], m["left_out_packets"], m["ambiguous"], m["shortened"] = a.LeftOutConns, a.LeftOutPackets, a.Ambiguous, a.Shortened
		}
		legs = append(legs, m)
	}
	out := map[string]any{"kind": "legs", "legs": legs}
	if agentSent > 0 {
		out["agent_sent"] = agentSent
	}
	jw.Object(out)
}

// Clock says what is known of a remote machine's clock.
func (tw *TextWriter) Clock(c ClockOffset, ok bool) {
	if !ok {
		tw.write("\nthe agent's clock offset is unknown: no request was seen both here and on the node in both directions\n")
		return
	}
	ahead, off := "ahead of", c.Offset
	if off < 0 {
		ahead, off = "behind", -off
	}
	tw.write(fmt.Sprintf("\nthe agent's clock runs %s %s this machine's (± %s, from %d request directions seen on both);\n"+
		"  the per-hop latencies above are on this machine's clock, the timeline's rows each on its leg's own\n",
		off, ahead, c.Uncertainty, c.Samples))
}

// Clock writes the estimate as {"kind":"clock"}, when there is one.
func (jw *JSONWriter) Clock(c ClockOffset, ok bool) {
	if ok {
		jw.Object(map[string]any{"kind": "clock", "offset_ns": c.Offset, "uncertainty_ns": c.Uncertainty, "samples": c.Samples})
	}
}

// counted is n and what it counts: "1 connection", "3 connections".
func counted(n int, one, many string) string { return fmt.Sprintf("%d %s", n, plural(n, one, many)) }

// write writes s unless a write failed before.
func (tw *TextWriter) write(s string) {
	if tw.err == nil {
		_, tw.err = io.WriteString(tw.w, s)
	}
}
