package trace

import (
	"strings"
	"testing"

	"github.com/pftap/pftap/decode"
)

func TestRefineRefused(t *testing.T) {
	msg := `error forwarding port 8081 to pod x, uid : failed to connect to localhost:8081 inside namespace "x", IPv4: dial tcp 127.0.0.1:8081: connect: connection refused`
	e := &decode.Event{Kind: decode.KindStreamError, Error: &msg, Port: 8081}
	why := decode.Diagnose(e)
	for _, tc := range []struct {
		listeners []string
		want      string
	}{
		{[]string{"127.0.0.1:80", "10.250.0.10:8081"}, "the app listens on 10.250.0.10:8081: the pod's IP only, not localhost"},
		{[]string{"0.0.0.0:80", "[::]:443"}, "nothing listens on port 8081 in the pod (it listens on: 80, 443)"},
		{[]string{"0.0.0.0:8081"}, "the app had not started yet"},
	} {
		if got := RefineRefused(why, e, tc.listeners); !strings.Contains(got, tc.want) {
			t.Errorf("listeners %v: %q, want it to say %q", tc.listeners, got, tc.want)
		}
	}
}
