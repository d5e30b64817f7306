// Command kubeapiserver is upstream's kube-apiserver
// (k8s.io/kubernetes/cmd/kube-apiserver at the lab's release), built here
// so that `pftap lab --apiserver` and the tests run the real control
// plane. scripts/test.sh builds it once and keeps it in the user's cache.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"

	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
