// Package report renders a whole session for people and programs, as
// pftap lab prints a live one and pftap replay a recorded one: the header,
// the timeline as it is decoded, the per-hop latencies, the requests'
// results (identical ones folded), the legs table, why tcpdump on the
// pod's eth0 shows nothing, the app's log, the client's words, the
// diagnosis and the totals, as text or JSON lines, and the HTML sequence
// diagram. What it says comes from one timeline.Analysis of the events;
// Session's error is the run's last line (an interrupt said as such, a
// failed request with the session's diagnosis).
package report
