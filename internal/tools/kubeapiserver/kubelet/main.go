// Command kubelet is upstream's kubelet (k8s.io/kubernetes/cmd/kubelet at
// the lab's release, the same module as the kube-apiserver beside it),
// built here so that `pftap lab --kubelet-binary` runs the real node.
// scripts/test.sh builds it once and keeps it in the user's cache.
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kubelet/app"

	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
)

func main() {
	os.Exit(cli.Run(app.NewKubeletCommand(context.Background())))
}
