package trace

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
)

// streamingMetric is the apiserver's count of the WebSocket streaming
// requests it routed, by subresource and proxy_type (1.36+).
const streamingMetric = "apiserver_websocket_streaming_requests_total"

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

// ReadRouted reads the apiserver's counts. Not being allowed to read
// /metrics is said in Why, not an error.
func ReadRouted(ctx context.Context, cs kubernetes.Interface) Routed {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	switch {
	case apierrors.IsForbidden(err):
		return Routed{Why: "these credentials may not read the apiserver's /metrics"}
	case apierrors.IsNotFound(err):
		return Routed{Why: "the apiserver serves no /metrics"}
	case err != nil:
		return Routed{Why: "the apiserver's /metrics could not be read: " + err.Error()}
	}
	return parseRouted(string(body))
}

// parseRouted reads the metric's portforward lines out of a /metrics
// body (Prometheus text format).
func parseRouted(body string) Routed {
	r := Routed{Why: "the apiserver has no " + streamingMetric + " (it counts from 1.36 on)"}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "# HELP "+streamingMetric+" ") {
			r.Read, r.Why = true, ""
		}
		rest, ok := strings.CutPrefix(line, streamingMetric+"{")
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

// Since is what was counted after before.
func (r Routed) Since(before Routed) Routed {
	if !r.Read || !before.Read {
		if r.Why == "" {
			r.Why = before.Why
		}
		return Routed{Why: r.Why}
	}
	return Routed{Proxied: r.Proxied - before.Proxied, Translated: r.Translated - before.Translated, Read: true}
}

// Says is the count in one sentence: how the apiserver routed the
// WebSocket port-forwards while trace ran (every user's, as the metric
// counts the whole apiserver).
func (r Routed) Says() string {
	if !r.Read {
		return "the apiserver's own count of how it routed the WebSocket: not read (" + r.Why + "); the path above is from the versions"
	}
	if r.Proxied == 0 && r.Translated == 0 {
		return "the apiserver's own count (" + streamingMetric + "): no WebSocket port-forward routed while trace ran (a SPDY one is not counted)"
	}
	return fmt.Sprintf("the apiserver's own count (%s, every user's): while trace ran it proxied %d WebSocket port-forward(s) to the kubelet as they came and translated %d into SPDY itself",
		streamingMetric, r.Proxied, r.Translated)
}
