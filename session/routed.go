package session

import (
	"fmt"
	"strconv"
	"strings"
)

// StreamingMetric is the apiserver's count of the WebSocket streaming
// requests it routed, by subresource and proxy_type (1.36+).
const StreamingMetric = "apiserver_websocket_streaming_requests_total"

// Routed is how the apiserver routed WebSocket port-forwards, from its own
// metrics (apiserver_websocket_streaming_requests_total, subresource
// portforward): Proxied to the kubelet as they were, or Translated at the
// apiserver into SPDY.
type Routed struct {
	Proxied    int `json:"proxied_to_kubelet"`
	Translated int `json:"translated_at_apiserver"`
	// Read says /metrics was read and has the metric; Why says why not
	// (not allowed to read it, an apiserver from before the metric).
	Read bool   `json:"read"`
	Why  string `json:"why,omitempty"`
}

// ParseRouted reads the metric's portforward lines out of a /metrics
// body (Prometheus text format), or of its lines that name the metric.
func ParseRouted(body string) Routed {
	r := Routed{Why: "the apiserver has no " + StreamingMetric + " (it counts from 1.36 on)"}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "# HELP "+StreamingMetric+" ") {
			r.Read, r.Why = true, ""
		}
		rest, ok := strings.CutPrefix(line, StreamingMetric+"{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok || !strings.Contains(labels, `subresource="portforward"`) {
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		r.Read, r.Why = true, ""
		switch {
		case strings.Contains(labels, `proxy_type="proxied_to_kubelet"`):
			r.Proxied = int(n)
		case strings.Contains(labels, `proxy_type="translated_at_apiserver"`):
			r.Translated = int(n)
		}
	}
	return r
}

// Since is what was counted after before. A metric with no sample yet is
// not in /metrics at all: a before without it counts as zero once the
// after has it.
func (r Routed) Since(before Routed) Routed {
	if !r.Read {
		return Routed{Why: r.Why}
	}
	return Routed{Proxied: r.Proxied - before.Proxied, Translated: r.Translated - before.Translated, Read: true}
}

// Says is the count in one sentence: how the apiserver routed the
// WebSocket port-forwards while what (trace, the lab's session) ran
// (every user's, as the metric counts the whole apiserver).
func (r Routed) Says(what string) string {
	if !r.Read {
		return "the apiserver's own count of how it routed the WebSocket: not read (" + r.Why + "); the path above is from the versions"
	}
	if r.Proxied == 0 && r.Translated == 0 {
		return "the apiserver's own count (" + StreamingMetric + "): no WebSocket port-forward routed while " + what + " ran (a SPDY one is not counted)"
	}
	return fmt.Sprintf("the apiserver's own count (%s, every user's): while %s ran it proxied %d WebSocket port-forward(s) to the kubelet as they came and translated %d into SPDY itself",
		StreamingMetric, what, r.Proxied, r.Translated)
}
