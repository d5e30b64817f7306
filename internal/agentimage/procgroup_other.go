//go:build !unix

package agentimage

import "os/exec"

// ownGroup leaves cmd as it is: its context's end kills the process
// alone.
func ownGroup(cmd *exec.Cmd) {}
