package agent

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/pftap/pftap/capture"
)

func TestOwnConnections(t *testing.T) {
	ap := netip.MustParseAddrPort
	// The kubelet's TLS connection from the apiserver (only the kubelet's
	// socket is on the node), and L3 on lo (both sockets on the node).
	l2 := sock{ap("10.250.0.6:10250"), ap("10.250.0.5:39296")}
	l3k := sock{ap("127.0.0.1:47450"), ap("127.0.0.1:41235")}
	l3r := sock{ap("127.0.0.1:41235"), ap("127.0.0.1:47450")}
	// Another port-forward in bulk: it moves more than either probe.
	bulk := sock{ap("10.250.0.6:10250"), ap("10.250.0.5:40000")}
	// Metrics scraping: small.
	small := sock{ap("10.250.0.6:10250"), ap("10.250.0.9:51000")}
	// A connection that moved once as much as a probe, by chance.
	once := sock{ap("127.0.0.1:50000"), ap("127.0.0.1:41235")}
	snaps := []map[sock]counters{
		{l2: {1000, 500}, l3k: {300, 900}, l3r: {900, 300}, bulk: {0, 0}, small: {10, 10}, once: {0, 0}},
		{l2: {1000 + 66000, 600}, l3k: {400, 900 + 65600}, l3r: {900 + 65600, 400}, bulk: {10 << 20, 0}, small: {20, 20}, once: {70000, 0}},
		{l2: {67000 + 164500, 700}, l3k: {500, 66500 + 164000}, l3r: {66500 + 164000, 500}, bulk: {20 << 20, 0}, small: {30, 30}, once: {70100, 0}},
	}
	got := ownConnections(snaps, probeSizes)
	want := []Tuple{makeTuple(l2.local, l2.remote), makeTuple(l3k.local, l3k.remote)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("own connections %v, want %v", got, want)
	}
	// A connection that began during the probes counts from zero.
	late := sock{ap("127.0.0.1:50001"), ap("127.0.0.1:41235")}
	snaps[1][late] = counters{66000, 0}
	snaps[2][late] = counters{66000 + 170000, 0}
	if got := ownConnections(snaps, probeSizes); len(got) != 3 {
		t.Errorf("a connection new during the probes: %v", got)
	}
	if got := ownConnections(snaps[:2], probeSizes); got != nil {
		t.Errorf("too few snapshots: %v", got)
	}
}

func TestWithExclusions(t *testing.T) {
	own := []Tuple{makeTuple(netip.MustParseAddrPort("127.0.0.1:47450"), netip.MustParseAddrPort("127.0.0.1:41235"))}
	got := withExclusions("tcp port 41235", own, 10299)
	want := "(tcp port 41235) and not port 10299 and not (host 127.0.0.1 and port 41235 and host 127.0.0.1 and port 47450)"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	f, err := capture.CompileFilter(got, true)
	if err != nil {
		t.Fatal(err)
	}
	_ = f
}
