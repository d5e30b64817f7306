package timeline

import (
	"sort"
	"strings"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/leg"
)

// Upgrades tells who made each 101 of a session seen on several legs:
// the hop that answered the upgrade, or, for a 101 passed on unchanged (the
// same WebSocket accept key, or the same SPDY headers, seen first on a leg
// further down the chain), whose it is and who passed it on. From 1.36 the
// 101 kubectl gets is the kubelet's; before, a WebSocket 101 is the
// apiserver's and a SPDY one the runtime's.
//
// Note sets decode.Event.UpgradeBy and appends the same to the event's
// text. It claims nothing the legs do not show (a capture of L1 alone
// cannot tell).
type Upgrades struct {
	answers []answer
	// NoRuntime says the chain has no runtime streaming server (the
	// session's legs have the pod's lo but no L3: the dockershim, whose
	// kubelet serves port-forward itself): a 101 on L2 is the kubelet's.
	NoRuntime bool
	// Path, when set, says who makes a 101 on the client's leg when no
	// leg below shows it (trace without an agent): from what the cluster
	// says of itself (its version, the node's declared features), and the
	// reason, which the event's text gives.
	Path func(websocket bool) (maker, why string)
}

type answer struct {
	leg   leg.ID
	key   string
	maker string
	used  bool
}

// depth is a leg's place down the chain, 0 for legs that carry no
// upgrade of the port-forward.
func depth(id leg.ID) int {
	switch id {
	case leg.L1:
		return 1
	case leg.L2:
		return 2
	case leg.L3:
		return 3
	}
	return 0
}

// server names the server of a leg's connections.
func server(id leg.ID) string {
	return map[leg.ID]string{leg.L1: "apiserver", leg.L2: "kubelet", leg.L3: "runtime"}[id]
}

// Note looks at one event, in time order.
func (u *Upgrades) Note(e *decode.Event) {
	d := depth(e.LegID)
	if d == 0 || e.Kind != decode.KindHTTPResponse || e.Status != 101 {
		return
	}
	key := upgradeKey(e.HTTPHeader)
	ws := strings.HasPrefix(key, "ws:")
	// A 101 passed on: the same answer, seen first further down.
	for i := len(u.answers) - 1; i >= 0; i-- {
		a := &u.answers[i]
		if !a.used && a.key == key && depth(a.leg) > d {
			a.used = true
			u.answers = append(u.answers, answer{e.LegID, key, a.maker, false})
			if a.maker == "" {
				// Whose it is was not seen (nothing below that leg).
				u.say(e, "", "the same 101 as on "+string(a.leg)+", passed on by the "+server(e.LegID))
			} else {
				u.say(e, a.maker, "the "+a.maker+"'s 101, passed on by the "+server(e.LegID))
			}
			return
		}
	}
	// Made here: certain where nothing below speaks the protocol (the
	// runtime's leg; WebSocket on the kubelet's); on L1, a WebSocket 101
	// whose request went on as SPDY (a SPDY answer on L2) is the
	// apiserver's own. Anything else is not claimed.
	spdyBelow := false
	for _, a := range u.answers {
		if a.leg == leg.L2 && !strings.HasPrefix(a.key, "ws:") {
			spdyBelow = true
		}
	}
	maker := ""
	switch {
	case e.LegID == leg.L3:
		maker = "runtime"
		u.say(e, maker, "made by the runtime")
	case ws && e.LegID == leg.L2:
		maker = "kubelet"
		u.say(e, maker, "made by the kubelet, which speaks SPDY to the runtime")
	case ws && e.LegID == leg.L1 && spdyBelow:
		maker = "apiserver"
		u.say(e, maker, "made by the apiserver, which speaks SPDY to the kubelet")
	case !ws && e.LegID == leg.L2 && u.NoRuntime:
		maker = "kubelet"
		u.say(e, maker, "made by the kubelet, which serves port-forward itself (no runtime streaming server below it)")
	case e.LegID == leg.L1 && u.Path != nil:
		if m, why := u.Path(ws); m != "" {
			maker = m
			u.say(e, maker, "the "+m+"'s, as "+why)
		}
	}
	u.answers = append(u.answers, answer{e.LegID, key, maker, false})
}

func (u *Upgrades) say(e *decode.Event, maker, text string) {
	e.UpgradeBy = maker
	e.Text += "; " + text
}

// upgradeKey identifies an answer to an upgrade: a WebSocket 101 by its
// accept key (derived from the client's key: passed on, it is the same), a
// SPDY one by its headers.
func upgradeKey(h map[string]string) string {
	if a := h["sec-websocket-accept"]; a != "" {
		return "ws:" + a
	}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("spdy:")
	for _, k := range keys {
		b.WriteString(k + "=" + h[k] + ";")
	}
	return b.String()
}
