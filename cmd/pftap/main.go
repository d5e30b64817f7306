// Command pftap is a protocol inspector and packet-level debugger for
// kubectl port-forward. See the README and `pftap --help`.
package main

import "os"

func main() { os.Exit(run(os.Args[1:], systemIO())) }
