package kube

import (
	"fmt"
	"strconv"
	"strings"
)

// A Version is a Kubernetes minor release (1.Minor): what a lab's
// apiserver or kubelet behaves like.
type Version struct{ Minor int }

// The releases pftap knows: the oldest (the last with the dockershim's
// nsenter + socat being 1.23), the one pftap's lab is by default, the
// newest.
var (
	Oldest = Version{20}
	// Current is the release pftap's lab is by default.
	Current = Version{37}
	Newest  = Version{38}
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
	if v.Minor < Oldest.Minor || v.Minor > Newest.Minor {
		return Version{}, fmt.Errorf("Kubernetes %s: pftap knows %s to %s", v, Oldest, Newest)
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
