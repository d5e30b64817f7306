package labrun

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/pftap/pftap/lab"
	"github.com/pftap/pftap/session"
)

// TestChainDiagram checks the header's drawing of the chain for both
// runtimes: every process in order with its address and namespace, every
// leg between the two processes it joins, and the silent eth0.
func TestChainDiagram(t *testing.T) {
	ap := netip.MustParseAddrPort
	legs := func(runtime string) []lab.Leg {
		ls := []lab.Leg{
			{ID: "L1", Name: "client → apiserver", Interface: "pftap7h", Server: ap("10.7.0.2:6443"), TLS: true},
			{ID: "L2", Name: "apiserver → kubelet", Netns: "t-cp", Interface: "eth1", Server: ap("10.7.0.6:10250"), TLS: true},
		}
		if runtime == "cri-streaming" {
			ls = append(ls, lab.Leg{ID: "L3", Name: "kubelet → runtime", Netns: "t-node", Interface: "lo", Server: ap("127.0.0.1:40001")})
		}
		from := map[string]string{"cri-streaming": "runtime", "socat": "socat"}[runtime]
		return append(ls,
			lab.Leg{ID: "L4", Name: from + " → app", Netns: "t-pod", Interface: "lo", Server: ap("127.0.0.1:80")},
			lab.Leg{ID: "witness", Name: "pod eth0", Netns: "t-pod", Interface: "eth0", Server: ap("10.7.0.10:80")})
	}
	for _, tc := range []struct {
		runtime, client string
		want            []string // in this order, each on its own line
	}{
		{"cri-streaming", "pftap", []string{
			"pftap (its port-forward client)", "host",
			"│ L1  client → apiserver", "tapped below TLS inside pftap's client", "▼",
			"kube-apiserver 10.7.0.2:6443", "netns t-cp (reached from the host over pftap7h)",
			"│ L2  apiserver → kubelet", "on the wire (netns t-cp eth1)", "▼",
			"kubelet 10.7.0.6:10250", "netns t-node",
			"│ L3  kubelet → runtime", "SPDY/3.1; captured on lo (netns t-node)", "▼",
			"runtime streaming server 127.0.0.1:40001", "netns t-node",
			"│ L4  runtime → app", "captured on lo (netns t-pod)", "▼",
			"app 127.0.0.1:80", "netns t-pod",
			"eth0 10.7.0.10, captured as a witness: port-forward never crosses it",
		}},
		{"socat", "kubectl", []string{
			"kubectl port-forward", "host",
			"│ L1  client → apiserver", "tapped below TLS inside the lab's apiserver", "▼",
			"kube-apiserver 10.7.0.2:6443",
			"│ L2  apiserver → kubelet", "▼",
			"kubelet 10.7.0.6:10250", "netns t-node",
			"│ (a pipe to a process the kubelet started: nothing on any interface)", "▼",
			"socat, started by the kubelet with nsenter", "netns t-pod",
			"│ L4  socat → app", "captured on lo (netns t-pod)", "▼",
			"app 127.0.0.1:80", "netns t-pod",
			"eth0 10.7.0.10",
		}},
	} {
		l := &lab.Lab{CPNetns: "t-cp", NodeNetns: "t-node", PodNetns: "t-pod", Legs: legs(tc.runtime)}
		got := ChainDiagram(l, session.Client(tc.client), false)
		rest := got
		for _, w := range tc.want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Fatalf("%s/%s: %q missing or out of order in\n%s", tc.runtime, tc.client, w, got)
			}
			rest = rest[i+len(w):]
		}
		if strings.Contains(got, "L3") != (tc.runtime == "cri-streaming") {
			t.Errorf("%s: L3 drawn wrongly:\n%s", tc.runtime, got)
		}
		// The boxes' second column lines up.
		col := -1
		for _, line := range strings.Split(strings.TrimRight(got, "\n"), "\n") {
			if strings.HasPrefix(line, "    ") {
				continue
			}
			i := strings.Index(line, "  host")
			if i < 0 {
				i = strings.Index(line, "  netns")
			}
			if i < 0 {
				continue
			}
			i = len([]rune(line[:i]))
			if col >= 0 && i != col {
				t.Errorf("%s: columns not aligned:\n%s", tc.runtime, got)
				break
			}
			col = i
		}
	}
}
