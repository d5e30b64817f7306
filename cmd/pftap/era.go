package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/pftap/pftap/lab"
)

// eraFlags choose the lab's era: what the apiserver and the kubelet
// behave as.
type eraFlags struct {
	kubernetes, kubelet string
	gateOff, stale      bool
	// binary is --apiserver: a real kube-apiserver as the control plane;
	// kubeletBinary is --kubelet-binary: the real kubelet as the node.
	binary, kubeletBinary string
	// containerd is --containerd: the containerd daemon of --runtime
	// containerd.
	containerd string
	// resolved, after check
	apiserver, node lab.Version
}

func (e *eraFlags) bind(f *pflag.FlagSet) {
	f.StringVar(&e.kubernetes, "kubernetes", "", fmt.Sprintf("the apiserver's release, %s to %s: 1.36+ sends WebSocket on to a kubelet that declares ExtendWebSocketsToKubelet, 1.31-1.35 tunnels it into SPDY, earlier makes clients fall back to SPDY (default %s; 1.23 with --runtime socat)", lab.OldestVersion, lab.NewestVersion, lab.CurrentVersion))
	f.StringVar(&e.kubelet, "kubelet", "", "the node's release (default: the apiserver's), to show version skew")
	f.BoolVar(&e.gateOff, "kubelet-gate-off", false, "run the kubelet (1.36, 1.37) with ExtendWebSocketsToKubelet=false")
	f.StringVar(&e.binary, "apiserver", "", "run this kube-apiserver binary (upstream's, built from k8s.io/kubernetes) as the control plane, on Debian's etcd: real authentication, RBAC and admission; --kubernetes is then its version")
	f.StringVar(&e.kubeletBinary, "kubelet-binary", "", "run this kubelet binary (upstream's, built from k8s.io/kubernetes) as the node, with --apiserver and --runtime containerd: it registers the node, runs the pod through containerd and serves :10250; --kubelet is then its version")
	f.StringVar(&e.containerd, "containerd", "", "with --runtime containerd: run this containerd daemon (default: Debian's, containerd on PATH), such as a containerd 2.x built from github.com/containerd/containerd/v2")
	f.BoolVar(&e.stale, "stale-node-status", false, "the Node declares ExtendWebSocketsToKubelet whatever its kubelet does (a status from before a downgrade): the apiserver sends it the WebSocket")
}

// check parses the versions and refuses, before anything is built, a
// combination that never existed.
func (e *eraFlags) check(runtime string, noWebSocket bool) error {
	cfg := lab.Config{Runtime: runtime, NoWebSocket: noWebSocket, KubeletGateOff: e.gateOff, StaleDeclaredFeatures: e.stale, APIServerBinary: e.binary, KubeletBinary: e.kubeletBinary, ContainerdBinary: e.containerd}
	for _, v := range []struct {
		flag, s string
		to      *lab.Version
	}{{"--kubernetes", e.kubernetes, &cfg.Kubernetes}, {"--kubelet", e.kubelet, &cfg.Kubelet}} {
		if v.s == "" {
			continue
		}
		ver, err := lab.ParseVersion(v.s)
		if err != nil {
			return usageError{fmt.Errorf("%s: %v", v.flag, err)}
		}
		*v.to = ver
	}
	if err := cfg.ResolveEra(); err != nil {
		return usageError{err}
	}
	e.apiserver, e.node = cfg.Kubernetes, cfg.Kubelet
	return nil
}

// apply puts the era into a lab's configuration.
func (e *eraFlags) apply(cfg *lab.Config) {
	cfg.Kubernetes, cfg.Kubelet, cfg.KubeletGateOff, cfg.StaleDeclaredFeatures = e.apiserver, e.node, e.gateOff, e.stale
	cfg.APIServerBinary, cfg.KubeletBinary, cfg.ContainerdBinary = e.binary, e.kubeletBinary, e.containerd
}
