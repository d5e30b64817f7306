// Package timeline renders decoded port-forward events: aligned text lines
// for people (with colour on terminals) and JSON lines for programs.
//
// Later it also correlates the legs of a chain (client↔apiserver,
// apiserver↔kubelet, kubelet↔runtime, the pod's lo) by stream, request and
// byte offset; today it renders the events of one capture.
package timeline
