// Command kubectl is today's kubectl, built from the k8s.io/kubectl module
// with kubectl's usual main, for tests that run pftap against the kubectl
// of the current release as well as the machine's /usr/bin/kubectl.
//
// It is a module of its own, so that pftap's go.mod does not carry
// kubectl's dependencies:
//
//	cd internal/tools/kubectl && go build -o /tmp/kubectl .
//
// internal/kubectl.Build does that for tests.
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
