package lab

import (
	"fmt"
	"strconv"
	"strings"
)

// A Version is a Kubernetes minor release (1.Minor): what a lab's
// apiserver or kubelet behaves like.
type Version struct{ Minor int }

// Versions a lab knows: the oldest (the last with the dockershim's
// nsenter + socat being 1.23) and the newest.
var (
	OldestVersion = Version{20}
	// CurrentVersion is the release a lab is by default.
	CurrentVersion = Version{37}
	NewestVersion  = Version{38}
)

// ParseVersion reads "1.37", "v1.37" or "v1.37.2".
func ParseVersion(s string) (Version, error) {
	t := strings.TrimPrefix(strings.TrimSpace(s), "v")
	parts := strings.Split(t, ".")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != "1" {
		return Version{}, fmt.Errorf("%q is not a Kubernetes version like 1.37", s)
	}
	for _, p := range parts[1:] {
		if _, err := strconv.Atoi(p); err != nil {
			return Version{}, fmt.Errorf("%q is not a Kubernetes version like 1.37", s)
		}
	}
	minor, _ := strconv.Atoi(parts[1])
	v := Version{minor}
	if v.Minor < OldestVersion.Minor || v.Minor > NewestVersion.Minor {
		return Version{}, fmt.Errorf("Kubernetes %s: a lab can be %s to %s", v, OldestVersion, NewestVersion)
	}
	return v, nil
}

func (v Version) String() string { return fmt.Sprintf("1.%d", v.Minor) }

// ParseServerVersion reads the minor release of a server's or kubelet's
// gitVersion as clusters report it ("v1.37.2", "v1.36.3-gke.1200",
// "v1.35.0+k3s1"), whatever the release.
func ParseServerVersion(git string) (Version, bool) {
	t := strings.TrimPrefix(strings.TrimSpace(git), "v")
	parts := strings.SplitN(t, ".", 3)
	if len(parts) < 2 || parts[0] != "1" {
		return Version{}, false
	}
	minor, err := strconv.Atoi(strings.TrimRight(parts[1], "+"))
	if err != nil || minor < 1 {
		return Version{}, false
	}
	return Version{minor}, true
}

// IsZero says the version was not given.
func (v Version) IsZero() bool { return v.Minor == 0 }

// GitVersion is what the lab's /version says for v.
func (v Version) GitVersion() string { return fmt.Sprintf("v1.%d.0-pftap-lab", v.Minor) }

// TunnelsWebSocket says an apiserver of v translates a WebSocket
// port-forward (SPDY tunnelled in WebSocket, from kubectl 1.31 on) into a
// SPDY upgrade towards the kubelet: 1.31 (PortForwardWebsockets, beta and
// on) and after, unless the node takes the WebSocket itself.
func (v Version) TunnelsWebSocket() bool { return v.Minor >= 31 }

// ExtendsWebSocketsToKubelet says the ExtendWebSocketsToKubelet gate is on
// by default in v (beta in 1.36 and 1.37, GA and locked on in 1.38): its
// apiserver proxies a WebSocket port-forward to a node that declares the
// feature, and its kubelet translates it to SPDY towards the runtime.
func (v Version) ExtendsWebSocketsToKubelet() bool { return v.Minor >= 36 }

// GateLocked says ExtendWebSocketsToKubelet cannot be turned off in v.
func (v Version) GateLocked() bool { return v.Minor >= 38 }

// HasDockershim says the kubelet of v could run the dockershim, whose
// port-forward is nsenter + socat (removed in 1.24).
func (v Version) HasDockershim() bool { return v.Minor <= 23 }

// FeatureExtendWebSocketsToKubelet is the feature gate, and the feature a
// node declares in status.declaredFeatures, of the 1.36+ chain.
const FeatureExtendWebSocketsToKubelet = "ExtendWebSocketsToKubelet"

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
	return c.checkEra()
}

// checkEra fills in the versions and refuses a combination that never
// existed.
func (c *Config) checkEra() error {
	if c.Kubernetes.IsZero() {
		switch {
		case c.Runtime == RuntimeSocat && c.Kubelet.IsZero():
			c.Kubernetes = Version{23}
		case c.NoWebSocket:
			c.Kubernetes = Version{30}
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
