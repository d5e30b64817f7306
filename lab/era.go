package lab

import (
	"fmt"

	"github.com/pftap/pftap/kube"
)

// Version is a Kubernetes minor release (kube.Version): what a lab's
// apiserver or kubelet behaves like.
type Version = kube.Version

// Versions a lab knows (kube's).
var (
	OldestVersion  = kube.Oldest
	CurrentVersion = kube.Current
	NewestVersion  = kube.Newest
)

// ParseVersion reads "1.37", "v1.37" or "v1.37.2" (kube.ParseVersion).
func ParseVersion(s string) (Version, error) { return kube.ParseVersion(s) }

// ParseServerVersion is kube.ParseServerVersion.
func ParseServerVersion(git string) (Version, bool) { return kube.ParseServerVersion(git) }

// FeatureExtendWebSocketsToKubelet is kube's.
const FeatureExtendWebSocketsToKubelet = kube.FeatureExtendWebSocketsToKubelet

// Era says in words what the chain of c carries on L2, and why.
func (c Config) Era() string {
	if c.RefuseWebSocket {
		return c.era() + "; but here every WebSocket upgrade is refused before it (400), so the client speaks SPDY on every leg"
	}
	return c.era()
}

func (c Config) era() string {
	api, node := c.Kubernetes, c.Kubelet
	switch {
	case !api.TunnelsWebSocket():
		return fmt.Sprintf("Kubernetes %s: the apiserver does not tunnel WebSocket port-forward (1.31 does); a WebSocket request goes on to the kubelet, which refuses it, and the client falls back to SPDY on every leg", api)
	case c.SendsWebSocketToKubelet() && c.KubeletTranslates():
		return fmt.Sprintf("Kubernetes %s: the node declares %s, so the apiserver proxies the client's WebSocket to the kubelet as it is; the kubelet translates it to SPDY towards the runtime", api, FeatureExtendWebSocketsToKubelet)
	case c.SendsWebSocketToKubelet():
		return fmt.Sprintf("Kubernetes %s with a %s node whose status still declares %s though its kubelet cannot take it: the apiserver proxies the client's WebSocket to the kubelet, which refuses it (400), and the client falls back to SPDY", api, node, FeatureExtendWebSocketsToKubelet)
	case api.ExtendsWebSocketsToKubelet():
		why := "its kubelet " + node.String() + " does not declare " + FeatureExtendWebSocketsToKubelet
		if c.KubeletGateOff {
			why = "its kubelet has " + FeatureExtendWebSocketsToKubelet + " turned off"
		}
		return fmt.Sprintf("Kubernetes %s with a %s node: %s, so the apiserver tunnels: it answers the client's WebSocket itself and speaks SPDY to the kubelet", api, node, why)
	default:
		return fmt.Sprintf("Kubernetes %s: the apiserver answers the client's WebSocket itself and speaks SPDY to the kubelet (1.31 to 1.35)", api)
	}
}

// SendsWebSocketToKubelet says whether the apiserver of c proxies a
// WebSocket port-forward to the kubelet as it is: 1.36+ with a Node that
// declares ExtendWebSocketsToKubelet (or before 1.31, which proxies
// everything as it is, but does not take WebSocket itself: see Era).
func (c Config) SendsWebSocketToKubelet() bool {
	return c.Kubernetes.ExtendsWebSocketsToKubelet() && c.declaresWebSockets()
}

// KubeletTranslates says whether the kubelet of c takes a WebSocket
// tunnel itself and speaks SPDY to the runtime (its gate on, 1.36+).
func (c Config) KubeletTranslates() bool {
	return c.Kubelet.ExtendsWebSocketsToKubelet() && !c.KubeletGateOff
}

// ResolveEra fills in the versions as Start would (the runtime's default
// too) and refuses a combination that never existed: a way to check a
// configuration before anything is built.
func (c *Config) ResolveEra() error {
	if c.Runtime == "" {
		c.Runtime = RuntimeCRIStreaming
	}
	if c.APIServerBinary != "" {
		if err := c.realAPIDefaults(); err != nil {
			return err
		}
	}
	if c.KubeletBinary != "" {
		if err := c.realKubeletDefaults(); err != nil {
			return err
		}
	}
	if err := c.checkContainerd(); err != nil {
		return err
	}
	return c.checkEra()
}

// checkEra fills in the versions and refuses a combination that never
// existed.
func (c *Config) checkEra() error {
	if c.Kubernetes.IsZero() {
		switch {
		case c.Runtime == RuntimeSocat && c.Kubelet.IsZero():
			c.Kubernetes = Version{Minor: 23}
		case c.NoWebSocket:
			c.Kubernetes = Version{Minor: 30}
		case !c.Kubelet.IsZero() && c.Kubelet.Minor > CurrentVersion.Minor:
			c.Kubernetes = c.Kubelet
		default:
			c.Kubernetes = CurrentVersion
		}
	}
	if c.Kubelet.IsZero() {
		c.Kubelet = c.Kubernetes
	}
	for _, v := range []Version{c.Kubernetes, c.Kubelet} {
		if v.Minor < OldestVersion.Minor || v.Minor > NewestVersion.Minor {
			return fmt.Errorf("Kubernetes %s: a lab can be %s to %s", v, OldestVersion, NewestVersion)
		}
	}
	if c.NoWebSocket && c.Kubernetes.TunnelsWebSocket() {
		return fmt.Errorf("no WebSocket port-forward and Kubernetes %s: an apiserver of 1.31 or later tunnels WebSocket (give --kubernetes 1.30 or earlier)", c.Kubernetes)
	}
	if c.Kubelet.Minor > c.Kubernetes.Minor {
		return fmt.Errorf("a %s kubelet with a %s apiserver: Kubernetes does not support a kubelet newer than its apiserver", c.Kubelet, c.Kubernetes)
	}
	if c.Kubernetes.Minor-c.Kubelet.Minor > 3 {
		return fmt.Errorf("a %s kubelet with a %s apiserver: Kubernetes supports a kubelet at most three minor versions older than its apiserver", c.Kubelet, c.Kubernetes)
	}
	if c.Runtime == RuntimeSocat && !c.Kubelet.HasDockershim() {
		return fmt.Errorf("the socat runtime is the dockershim's port-forward, removed in 1.24: it cannot run with a %s kubelet (give --kubernetes 1.23 or earlier)", c.Kubelet)
	}
	if c.KubeletGateOff && !c.Kubelet.ExtendsWebSocketsToKubelet() {
		return fmt.Errorf("%s off: a %s kubelet has no such gate (1.36 and later)", FeatureExtendWebSocketsToKubelet, c.Kubelet)
	}
	if c.KubeletGateOff && c.Kubelet.GateLocked() {
		return fmt.Errorf("%s off: the gate is GA and locked on in %s", FeatureExtendWebSocketsToKubelet, c.Kubelet)
	}
	return nil
}

// declaresWebSockets says whether the lab's Node declares
// ExtendWebSocketsToKubelet in status.declaredFeatures.
func (c Config) declaresWebSockets() bool {
	if c.StaleDeclaredFeatures {
		return true
	}
	return c.Kubelet.ExtendsWebSocketsToKubelet() && !c.KubeletGateOff
}
