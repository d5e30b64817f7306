//go:build !unix

package main

import "os/exec"

// ownGroup leaves cmd as it is: its context's end kills the process
// alone (exec.CommandContext's default).
func ownGroup(cmd *exec.Cmd) {}
