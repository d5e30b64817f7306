package trace

import (
	"context"
	"fmt"
	"slices"

	"github.com/pftap/pftap/kube"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Path is which chain a port-forward to the target takes in this cluster,
// as the apiserver decides it: from the server's version and the features
// the pod's node declares.
type Path struct {
	// Server is the apiserver's gitVersion; Node the pod's node, Kubelet
	// its kubelet's version.
	Server  string `json:"server"`
	Node    string `json:"node"`
	Kubelet string `json:"kubelet"`
	// NodeRead says the Node could be read; Declares that it declares
	// ExtendWebSocketsToKubelet (status.declaredFeatures).
	NodeRead bool `json:"node_read"`
	Declares bool `json:"declares_extend_websockets_to_kubelet"`
	// WebSocketToKubelet says L2 carries the client's WebSocket (the
	// kubelet translates); false: the apiserver tunnels (SPDY on L2), or,
	// before 1.31, a WebSocket upgrade is refused and the client falls
	// back to SPDY.
	WebSocketToKubelet bool `json:"websocket_to_kubelet"`
	// Says is the path in one sentence.
	Says string `json:"text"`
	// makers: who answers a WebSocket and a SPDY upgrade, when the
	// cluster says (see Maker).
	wsMaker, wsWhy, spdyMaker, spdyWhy string
}

// Maker says who makes the 101 of a WebSocket (websocket) or SPDY upgrade
// on this cluster's path, and why, as the cluster says of itself (its
// version, the node's declared features); "" when it does not say.
func (p Path) Maker(websocket bool) (maker, why string) {
	if websocket {
		return p.wsMaker, p.wsWhy
	}
	return p.spdyMaker, p.spdyWhy
}

// ClusterPath reads the server's version and the pod's Node (a missing
// permission to get nodes is said, not an error) and says which chain the
// port-forward takes.
func ClusterPath(ctx context.Context, cs kubernetes.Interface, t *Target) Path {
	p := Path{Node: t.Pod.Spec.NodeName}
	var v kube.Version
	known := false
	if sv, err := cs.Discovery().ServerVersion(); err == nil {
		p.Server = sv.GitVersion
		v, known = kube.ParseServerVersion(sv.GitVersion)
	}
	var nodeErr error
	if p.Node != "" {
		n, err := cs.CoreV1().Nodes().Get(ctx, p.Node, metav1.GetOptions{})
		if err == nil {
			p.NodeRead = true
			p.Kubelet = n.Status.NodeInfo.KubeletVersion
			p.Declares = slices.Contains(n.Status.DeclaredFeatures, kube.FeatureExtendWebSocketsToKubelet)
		} else {
			nodeErr = err
		}
	}
	server := p.Server
	if server == "" {
		server = "of an unknown version"
	}
	if known && v.Minor >= 24 {
		// Since 1.24 every node runs a CRI runtime, whose streaming
		// server answers the SPDY upgrade the hops pass on.
		p.spdyMaker, p.spdyWhy = "runtime", fmt.Sprintf("the cluster's path says (Kubernetes %s: a CRI runtime's streaming server answers, the apiserver and the kubelet pass its 101 on)", server)
	}
	switch {
	case !known:
		p.Says = fmt.Sprintf("the apiserver is %s: which chain it takes is not known", server)
	case !v.TunnelsWebSocket():
		p.Says = fmt.Sprintf("Kubernetes %s: the apiserver does not tunnel WebSocket port-forward (1.31 does): the WebSocket upgrade is refused and pftap falls back to SPDY, on every leg", server)
	case v.ExtendsWebSocketsToKubelet() && p.Declares:
		p.WebSocketToKubelet = true
		p.wsMaker, p.wsWhy = "kubelet", fmt.Sprintf("the cluster's path says (node %s declares %s: the apiserver passes the WebSocket on)", p.Node, kube.FeatureExtendWebSocketsToKubelet)
		p.Says = fmt.Sprintf("Kubernetes %s, and node %s (kubelet %s) declares %s: the apiserver passes the WebSocket on to the kubelet (L2 carries WebSocket), which speaks SPDY to the runtime",
			server, p.Node, p.Kubelet, kube.FeatureExtendWebSocketsToKubelet)
	case v.ExtendsWebSocketsToKubelet() && p.NodeRead:
		p.wsMaker, p.wsWhy = "apiserver", fmt.Sprintf("the cluster's path says (node %s does not declare %s: the apiserver tunnels)", p.Node, kube.FeatureExtendWebSocketsToKubelet)
		p.Says = fmt.Sprintf("Kubernetes %s, but node %s (kubelet %s) does not declare %s: the apiserver tunnels the WebSocket into SPDY (L2 carries SPDY)",
			server, p.Node, p.Kubelet, kube.FeatureExtendWebSocketsToKubelet)
	case v.ExtendsWebSocketsToKubelet():
		why := "no node"
		if nodeErr != nil {
			why = "cannot read node " + p.Node + ": " + nodeErr.Error()
		}
		p.Says = fmt.Sprintf("Kubernetes %s: L2 carries the WebSocket if the node declares %s, SPDY if not (%s)", server, kube.FeatureExtendWebSocketsToKubelet, why)
	default:
		p.wsMaker, p.wsWhy = "apiserver", fmt.Sprintf("the cluster's path says (Kubernetes %s: the apiserver tunnels the WebSocket into SPDY)", server)
		p.Says = fmt.Sprintf("Kubernetes %s: the apiserver tunnels the WebSocket into SPDY towards the kubelet (L2 carries SPDY)", server)
	}
	return p
}
