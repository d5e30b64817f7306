package labrun

import (
	"runtime/debug"

	"fmt"
	"strings"

	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/session"

	"github.com/pftap/pftap/lab"
	"github.com/pftap/pftap/leg"
)

// clientGoVersion is the version of client-go this pftap was built with.
func clientGoVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "k8s.io/client-go" {
				return "client-go " + d.Version
			}
		}
	}
	return "client-go"
}

func describeLab(l *lab.Lab, client session.Client, spdy bool, kubectlPath string) session.Description {
	c := l.Config()
	var b strings.Builder
	app := c.App
	if app == lab.AppBuiltin {
		app = "built-in app"
	}
	who := "pftap's own port-forward client (client-go, WebSocket first, SPDY fallback)"
	switch {
	case client == session.Kubectl && spdy:
		who = "kubectl port-forward (" + kubectlIs(kubectlPath) + "; SPDY/3.1 after the lab refused its WebSocket upgrade: kubectl has no other way to choose SPDY since 1.38)"
	case client == session.Kubectl:
		who = "kubectl port-forward (" + kubectlIs(kubectlPath) + ")"
	case spdy:
		who = "pftap's own port-forward client (client-go, SPDY/3.1)"
	}
	control := ""
	if v := l.APIServerVersion(); v != "" {
		control = ", the real kube-apiserver " + v
	}
	if v := l.KubeletVersion(); v != "" {
		control += " and the real kubelet " + v
	}
	fmt.Fprintf(&b, "pftap lab: %s to pod/%s through a local chain (%s runtime, %s%s), every leg tapped\n", who, c.Pod, c.Runtime, app, control)
	era := c.Era()
	if spdy && !c.RefuseWebSocket && c.Kubernetes.TunnelsWebSocket() {
		// The client never asks for WebSocket: the era's WebSocket path
		// is not taken.
		era = fmt.Sprintf("Kubernetes %s, and a client that speaks SPDY/3.1: the apiserver and the kubelet pass its upgrade on as it is and the runtime answers it, SPDY on every leg (a WebSocket client would take another path: %s)",
			c.Kubernetes, strings.TrimPrefix(c.Era(), "Kubernetes "+c.Kubernetes.String()+": "))
	}
	fmt.Fprintf(&b, "  %s\n\n", era)
	b.WriteString(ChainDiagram(l, client, spdy))
	f := session.Facts{Kubernetes: c.Kubernetes.GitVersion(), Kubelet: c.Kubelet.GitVersion(), APIServer: "pftap's own", Era: era,
		Runtime: c.Runtime, App: c.App, Client: client, SPDY: spdy}
	if v := l.APIServerVersion(); v != "" {
		f.Kubernetes, f.APIServer = v, "kube-apiserver"
	}
	f.RuntimeVersion = l.RuntimeVersion()
	f.KubeletIs = "pftap's own"
	if v := l.KubeletVersion(); v != "" {
		f.Kubelet, f.KubeletIs = v, "kubelet"
	}
	if client == session.Kubectl {
		f.ClientPath, f.ClientVersion = kubectlPath, kubectl.Version(kubectlPath)
	} else {
		f.ClientVersion = clientGoVersion()
	}
	return session.Description{Header: b.String(), PodNetns: l.PodNetns, Client: client, Facts: f}
}

// kubectlIs names the kubectl that runs: its version and path.
func kubectlIs(path string) string {
	if v := kubectl.Version(path); v != "" {
		return "kubectl " + v + ", " + path
	}
	return path
}

// ChainDiagram draws a lab's chain top to bottom: each process with its
// address and network namespace, and between two of them the leg that
// joins them, what it carries (for a client that tries WebSocket first,
// or speaks SPDY) and where a lab session taps it.
func ChainDiagram(l *lab.Lab, client session.Client, spdy bool) string {
	c := l.Config()
	wsToKubelet := !spdy && c.SendsWebSocketToKubelet() && c.KubeletTranslates()
	l2 := "SPDY/3.1 upgrade, the client's, passed on"
	switch {
	case wsToKubelet:
		l2 = "the client's WebSocket upgrade passed on, the same frames as L1 (SPDY tunnelled in them)"
	case !spdy && c.Kubernetes.TunnelsWebSocket() && !c.SendsWebSocketToKubelet():
		l2 = "SPDY/3.1 upgrade made by the apiserver, which answered L1's WebSocket itself"
	case !spdy:
		l2 = "the client's WebSocket upgrade passed on and refused by the kubelet (400), then its SPDY/3.1 upgrade"
	}
	l3 := "plain HTTP upgrade, then SPDY/3.1"
	if wsToKubelet {
		l3 = "plain HTTP SPDY/3.1 upgrade made by the kubelet, which answered L2's WebSocket itself"
	}
	type box struct{ name, where string }
	netnsOf := map[string]string{"apiserver": l.CPNetns, "kubelet": l.NodeNetns, "runtime": l.NodeNetns, "socat": l.PodNetns, "app": l.PodNetns}
	title := map[string]string{"apiserver": "kube-apiserver", "kubelet": "kubelet", "runtime": "runtime streaming server", "socat": "socat", "app": "app"}
	if v := l.APIServerVersion(); v != "" {
		title["apiserver"] = "kube-apiserver " + v + " (upstream's)"
	}
	if v := l.KubeletVersion(); v != "" {
		title["kubelet"] = "kubelet " + v + " (upstream's)"
	}
	if c.Runtime == lab.RuntimeContainerd {
		title["runtime"] = "containerd's streaming server"
	}
	clientName := map[session.Client]string{session.Pftap: "pftap (its port-forward client)", session.Kubectl: "kubectl port-forward"}[client]
	boxes := []box{{clientName, "host"}}
	var links []string
	var witness *lab.Leg
	prev := "client"
	for i := range l.Legs {
		lg := l.Legs[i]
		if lg.ID == leg.Witness {
			witness = &l.Legs[i]
			continue
		}
		from, to, _ := strings.Cut(lg.Name, " → ")
		if from != prev {
			// socat: the kubelet pipes the stream into a process it
			// started in the pod's namespace; no socket, nothing on a wire.
			links = append(links, "(a pipe to a process the kubelet started: nothing on any interface)")
			boxes = append(boxes, box{title[from] + ", started by the kubelet with nsenter", "netns " + netnsOf[from]})
		}
		prev = to
		var how string
		switch {
		case lg.ID == leg.L1 && client == session.Kubectl && l.APIServerVersion() != "":
			how = fmt.Sprintf("TLS; captured on the wire (%s): the real apiserver's TLS ends inside it", lg.Interface)
		case lg.ID == leg.L1 && client == session.Kubectl:
			how = "TLS; tapped below TLS inside the lab's apiserver"
		case lg.ID == leg.L1:
			how = "TLS; tapped below TLS inside pftap's client"
		case lg.ID == leg.L2 && l.KubeletVersion() != "":
			how = fmt.Sprintf("TLS, %s; captured on the wire (netns %s %s): the real kubelet's TLS ends inside it", l2, lg.Netns, lg.Interface)
		case lg.ID == leg.L2:
			how = fmt.Sprintf("TLS, %s; tapped below TLS inside the kubelet, and on the wire (netns %s %s)", l2, lg.Netns, lg.Interface)
		case lg.ID == leg.L3:
			how = fmt.Sprintf("%s; captured on lo (netns %s)", l3, lg.Netns)
		default:
			how = fmt.Sprintf("plain TCP, the app's own bytes; captured on lo (netns %s)", lg.Netns)
		}
		if !lg.TLS {
			how = strings.Replace(how, "TLS; tapped below TLS", "plain HTTP; tapped", 1)
			how = strings.Replace(strings.Replace(how, "TLS, ", "plain HTTP, ", 1), "tapped below TLS", "tapped", 1)
		}
		links = append(links, fmt.Sprintf("%-3s %-22s %s", lg.ID, lg.Name, how))
		where := "netns " + netnsOf[to]
		if to == "apiserver" || to == "kubelet" {
			where = fmt.Sprintf("netns %s (reached from the %s)", netnsOf[to], map[string]string{"apiserver": "host over " + l.Legs[0].Interface, "kubelet": "apiserver's namespace"}[to])
		}
		boxes = append(boxes, box{fmt.Sprintf("%s %s", title[to], lg.Server), where})
	}
	width := 0
	for _, bx := range boxes {
		width = max(width, len([]rune(bx.name)))
	}
	var b strings.Builder
	for i, bx := range boxes {
		fmt.Fprintf(&b, "  %s%s  %s\n", bx.name, strings.Repeat(" ", width-len([]rune(bx.name))), bx.where)
		if i < len(links) {
			fmt.Fprintf(&b, "    │ %s\n    ▼\n", links[i])
		}
	}
	if witness != nil {
		fmt.Fprintf(&b, "  %s  the pod's eth0 %s, captured as a witness: port-forward never crosses it\n", strings.Repeat(" ", width), witness.Server.Addr())
	}
	return b.String()
}
