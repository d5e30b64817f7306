// Package trace is what `pftap trace` does against a real cluster: it
// resolves a target as kubectl port-forward does (pod/NAME, NAME, svc/NAME
// and workloads with a selector; numeric and named ports), forwards with
// pftap's own client (WebSocket tunnel first, SPDY fallback) while tapping
// the client's leg below TLS, decodes it live and explains failures
// (decode.Diagnose). The node-side legs (pftap agent) are not here yet.
package trace
