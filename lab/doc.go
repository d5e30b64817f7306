// Package lab builds a miniature Kubernetes port-forward chain on one Linux
// machine, in network namespaces, with the real Kubernetes server code at
// every hop, so that real kubectl works against it and every hop a real
// cluster has can be tapped.
//
// # The chain
//
//		host ──veth── control plane ──veth── node ──veth── pod
//		kubectl       apiserver :6443        kubelet :10250     lo: the app
//		              (TLS, token auth)      (TLS, client certs)
//		                                     streaming server on lo (containerd)
//
//	  - The apiserver serves discovery, GET and LIST of the pod (and tables
//	    for `kubectl get`), its Node (with the features its kubelet declares),
//	    and proxies pods/portforward to the kubelet with the upstream
//	    upgrade-aware proxy (k8s.io/apimachinery). What it does with a
//	    WebSocket request depends on its release (Config.Kubernetes, see
//	    Config.Era): from 1.36, for a node that declares
//	    ExtendWebSocketsToKubelet, it passes it on as it is; from 1.31 it
//	    answers it with the upstream tunnelling handler (k8s.io/apiserver) and
//	    speaks SPDY to the kubelet; before that it passes it on to a kubelet
//	    that refuses it.
//	  - The kubelet (Config.Kubelet) reads the v4 options of every request
//	    (a WebSocket one without ports in its query: 400), except that from
//	    1.36, with its gate on, it answers a WebSocket tunnel itself with the
//	    same tunnelling handler. With RuntimeCRIStreaming it asks the runtime
//	    for a streaming URL and proxies to the runtime's streaming server
//	    (upstream k8s.io/cri-streaming, in-process) on the node's 127.0.0.1,
//	    whose port forwarder enters the pod's namespace and dials
//	    localhost:PORT (IPv4, then IPv6); with RuntimeContainerd the same
//	    is done by a real containerd daemon, reached through the CRI
//	    PortForward RPC on its socket, its pod sandbox made through CNI; with RuntimeSocat (the dockershim, up to 1.23) it serves
//	    port-forward itself and runs `nsenter --net=POD socat -
//	    TCP4:localhost:PORT` per connection.
//	  - The pod has lo, an eth0 with the pod IP and a default route, and the
//	    app: the built-in App, Debian's nginx, or any command.
//
// Lab.Legs says where each hop can be tapped. Config.Plain drops TLS so that
// every leg can be read from a packet capture (kubectl then sends no token).
//
// # Names and clean-up
//
// Namespaces are NAME-cp, NAME-node and NAME-pod, the host link pftapNh,
// and NAME starts with Prefix and the process ID. Addresses come from a
// private /24 of DefaultSubnets that the host does not route. Start records
// the lab in StateDir before it makes anything; Close removes every
// namespace, link, process and file; Clean removes what labs whose process
// died left behind, including processes still running in their namespaces.
//
// Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN). Linux only: elsewhere Start
// returns ErrNotSupported.
package lab
