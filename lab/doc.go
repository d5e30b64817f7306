// Package lab builds a miniature Kubernetes port-forward chain on one Linux
// machine, with the real Kubernetes server code at each hop.
//
// What exists today is the core the recordings in testdata/ are made with:
//
//   - a pod: a network namespace with lo up and the built-in HTTP app (App)
//     listening on localhost inside it;
//   - the runtime's streaming server (upstream k8s.io/cri-streaming) on the
//     host's 127.0.0.1, whose port forwarder enters the pod's namespace and
//     dials localhost:PORT, IPv4 then IPv6, as containerd does;
//   - an apiserver on 127.0.0.1 (plain HTTP) that serves what kubectl needs
//     for `kubectl port-forward pod/NAME` (discovery, the pod) and proxies
//     pods/portforward with the upstream upgrade-aware proxy
//     (k8s.io/apimachinery) and WebSocket tunnelling handler
//     (k8s.io/apiserver); Config.NoWebSocket refuses WebSocket like an
//     apiserver from before 1.31.
//
// Start builds it and writes a kubeconfig; Close removes every namespace,
// server and file it made. Everything it names starts with Prefix.
//
// Needs root (CAP_SYS_ADMIN for namespaces). Linux only.
package lab
