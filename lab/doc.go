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
//	    for `kubectl get`), and proxies pods/portforward to the kubelet with
//	    the upstream upgrade-aware proxy (k8s.io/apimachinery); WebSocket
//	    requests that ask for the SPDY tunnel go through the upstream
//	    tunnelling handler (k8s.io/apiserver), unless Config.NoWebSocket makes
//	    it refuse them like an apiserver from before 1.31.
//	  - The kubelet, with RuntimeContainerd, asks the runtime for a streaming
//	    URL and proxies to the runtime's streaming server (upstream
//	    k8s.io/cri-streaming) on the node's 127.0.0.1, whose port forwarder
//	    enters the pod's namespace and dials localhost:PORT (IPv4, then IPv6);
//	    with RuntimeSocat it serves port-forward itself and runs
//	    `nsenter --net=POD socat - TCP4:localhost:PORT` per connection.
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
