package session

import "testing"

func TestParseRouted(t *testing.T) {
	body := `# HELP apiserver_websocket_streaming_requests_total [ALPHA] Total number of WebSocket streaming requests
# TYPE apiserver_websocket_streaming_requests_total counter
apiserver_websocket_streaming_requests_total{proxy_type="proxied_to_kubelet",subresource="portforward"} 3
apiserver_websocket_streaming_requests_total{proxy_type="translated_at_apiserver",subresource="portforward"} 1
apiserver_websocket_streaming_requests_total{proxy_type="proxied_to_kubelet",subresource="exec"} 7
`
	r := ParseRouted(body)
	if !r.Read || r.Proxied != 3 || r.Translated != 1 {
		t.Errorf("%+v", r)
	}
	d := r.Since(Routed{Proxied: 2, Read: true})
	if !d.Read || d.Proxied != 1 || d.Translated != 1 {
		t.Errorf("since: %+v", d)
	}
	// A metric declared but not yet counted: read, nothing routed.
	if r := ParseRouted("# HELP apiserver_websocket_streaming_requests_total x\n"); !r.Read || r.Proxied != 0 {
		t.Errorf("declared only: %+v", r)
	}
	// An apiserver from before the metric.
	if r := ParseRouted("apiserver_request_total 5\n"); r.Read || r.Why == "" {
		t.Errorf("no metric: %+v", r)
	}
	if got := (Routed{Why: "x"}).Since(Routed{Read: true}); got.Read {
		t.Errorf("a failed read after: %+v", got)
	}
	// No sample before the first routing: the metric appears with it.
	if got := r.Since(Routed{Why: "no metric yet"}); !got.Read || got.Proxied != 3 || got.Translated != 1 {
		t.Errorf("since nothing: %+v", got)
	}
}
