// Command pftap is a protocol inspector and packet-level debugger for
// kubectl port-forward.
//
//	pftap lab                      build a local chain, tap every hop, print the hops side by side
//	pftap lab up|down|status|clean keep a lab running for real kubectl
//	pftap decode FILE              decode a capture of port-forward traffic
//	pftap capture                  capture inside any network namespace
//
// This package is the command line only: flags become an options struct,
// a run function does the work and writes to its IOStreams, and exit codes
// are decided in run (root.go).
package main
