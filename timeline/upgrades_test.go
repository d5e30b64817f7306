package timeline

import (
	"testing"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/leg"
)

// TestUpgrades: the staircase of 101s in each era says who made each,
// and nothing is claimed where the legs below were not seen.
func TestUpgrades(t *testing.T) {
	spdy := map[string]string{"connection": "Upgrade", "upgrade": "SPDY/3.1", "x-stream-protocol-version": "portforward.k8s.io"}
	ws := map[string]string{"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "sec-websocket-protocol": "SPDY/3.1+portforward.k8s.io"}
	r101 := func(id leg.ID, h map[string]string) *decode.Event {
		return &decode.Event{Kind: decode.KindHTTPResponse, Status: 101, LegID: id, Text: "101 Switching Protocols", HTTPHeader: h}
	}
	for _, tc := range []struct {
		name string
		evs  []*decode.Event
		want []string // UpgradeBy, in order
		text string   // the last event's text
	}{
		{"1.37", []*decode.Event{r101(leg.L3, spdy), r101(leg.L2, ws), r101(leg.L1, ws)},
			[]string{"runtime", "kubelet", "kubelet"}, "101 Switching Protocols; the kubelet's 101, passed on by the apiserver"},
		{"1.35", []*decode.Event{r101(leg.L3, spdy), r101(leg.L2, spdy), r101(leg.L1, ws)},
			[]string{"runtime", "runtime", "apiserver"}, "101 Switching Protocols; made by the apiserver, which speaks SPDY to the kubelet"},
		{"spdy", []*decode.Event{r101(leg.L3, spdy), r101(leg.L2, spdy), r101(leg.L1, spdy)},
			[]string{"runtime", "runtime", "runtime"}, "101 Switching Protocols; the runtime's 101, passed on by the apiserver"},
		{"L1 alone", []*decode.Event{r101(leg.L1, ws)}, []string{""}, "101 Switching Protocols"},
		{"no L3 (socat)", []*decode.Event{r101(leg.L2, spdy), r101(leg.L1, spdy)},
			[]string{"", ""}, "101 Switching Protocols; the same 101 as on L2, passed on by the apiserver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var u Upgrades
			for i, e := range tc.evs {
				u.Note(e)
				if e.UpgradeBy != tc.want[i] {
					t.Errorf("event %d (%s): made by %q, want %q", i, e.LegID, e.UpgradeBy, tc.want[i])
				}
			}
			if last := tc.evs[len(tc.evs)-1].Text; last != tc.text {
				t.Errorf("text %q, want %q", last, tc.text)
			}
		})
	}
}
