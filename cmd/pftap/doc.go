// Command pftap is a protocol inspector and packet-level debugger for
// kubectl port-forward.
//
//	pftap lab                      build a local chain, tap every hop, print the hops side by side
//	pftap lab up|down|status|clean keep a lab running for real kubectl
//	pftap trace TYPE/NAME PORT...  kubectl port-forward against any cluster, tapped
//	pftap agent                    the node side of trace
//	pftap capture                  capture inside any network namespace
//	pftap decode FILE              decode a capture of port-forward traffic
//	pftap replay FILE              re-render a recording, or serve it as an apiserver
//	pftap version
//
// The command shape is gh's: NewCmdX fills an XOptions struct from flags and
// validates it before anything runs; xRun does the work and writes only to
// its IOStreams; exit codes are decided in run (root.go): 2 for a wrong
// command line, 1 for a failure, each said in one line.
//
// The work is done below: the tapped session (lab, trace's pipeline, the
// recordings replay reads) in package session, trace and agent in their
// own packages; this package renders what they return.
package main
