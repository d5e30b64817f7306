package decode

import (
	"strings"
	"testing"
)

func TestDiagnose(t *testing.T) {
	s := func(v string) *string { return &v }
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{Event{Kind: KindStreamError, Error: s(`error forwarding port 81 to pod sandbox-x, uid : failed to connect to localhost:81 inside namespace "sandbox-x", IPv4: dial tcp 127.0.0.1:81: connect: connection refused IPv6: dial tcp [::1]:81: connect: connection refused`)},
			"nothing is listening on port 81 on the pod's loopback"},
		{Event{Kind: KindStreamError, Error: s(`an error occurred forwarding 8080 -> 80: error forwarding port 80 to pod 1a2b, uid : failed to find sandbox "1a2b" in store: not found`)},
			"the pod's sandbox is gone"},
		{Event{Kind: KindStreamError, Error: s(`unable to do port forwarding: socat not found`)}, "install socat on the node"},
		{Event{Kind: KindStreamError, Error: s(`(conn=0x1, request=0) timed out waiting for streams`)}, "stream-creation timeout"},
		{Event{Kind: KindHTTPResponse, Status: 403, Text: `403 Forbidden: pods "nginx" is forbidden: User "bob" cannot create resource "pods/portforward" in API group "" in the namespace "default"`},
			"the user needs the verb create (and get) on pods/portforward"},
		{Event{Kind: KindHTTPResponse, Status: 401, Text: "401 Unauthorized"}, "did not accept the credentials"},
		{Event{Kind: KindHTTPResponse, Status: 404, Text: `404 Not Found: pods "nope" not found`}, "the pod does not exist"},
		{Event{Kind: KindHTTPResponse, Status: 400, Text: "400 Bad Request: unable to upgrade: WebSocket port-forward is not enabled  upgrade refused"}, "clients fall back to SPDY/3.1"},
		{Event{Kind: KindHTTPResponse, Status: 400, Text: `400 Bad Request  upgrade refused: "query parameter \"port\" is required"`}, "400 from the kubelet: a WebSocket tunnel reached a kubelet that cannot take it"},
		{Event{Kind: KindHTTPResponse, Status: 101}, ""},
		{Event{Kind: KindHTTPResponse, Status: 200}, ""},
		{Event{Kind: KindData}, ""},
	} {
		got := Diagnose(&tc.e)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("Diagnose(%s %q) = %q, want it to say %q", tc.e.Kind, tc.e.Text, got, tc.want)
		}
	}
}
