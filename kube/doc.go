// Package kube holds the facts of Kubernetes releases that decide the
// port-forward chain: a Version (a minor release), and what each does
// with a WebSocket port-forward (TunnelsWebSocket from 1.31,
// ExtendsWebSocketsToKubelet from 1.36, the feature a node declares for
// it, the dockershim up to 1.23). It is a pure leaf: the lab builds its
// chain from these facts, trace reads a cluster's path with them.
package kube
