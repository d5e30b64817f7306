package labrun

import (
	"fmt"
	"strings"

	"github.com/pftap/pftap/lab"
)

// Faults the lab can produce on request (LabOptions.Fault), each with the
// mechanism that causes it in clusters.
const (
	FaultRefused        = "refused"
	FaultSandboxGone    = "sandbox-gone"
	FaultRBAC           = "rbac-get-only"
	FaultSkew           = "websocket-skew"
	FaultRuntimeDies    = "runtime-dies"
	FaultRuntimeHangs   = "runtime-hangs"
	FaultStripUpgrades  = "strip-upgrades"
	FaultIdleDrop       = "idle-drop"
	FaultStreamEOF      = "stream-eof"
	FaultClientReset    = "client-reset"
	FaultSchemeMismatch = "scheme-mismatch"
	FaultHTTPSProxy     = "https-proxy"
	FaultAppOnPodIP     = "app-on-pod-ip"
)

// Fault is one failure the lab can produce.
type Fault struct {
	Name, About string
	// Finding is the name of the decode.Finding it shows.
	Finding string
}

// Faults lists them, for --help and the tests.
var Faults = []Fault{
	{FaultRefused, "forward to a port nothing listens on in the pod: the runtime's dial to localhost is refused", "refused"},
	{FaultAppOnPodIP, "the built-in app listens on the pod's IP only: the runtime's dial to localhost is refused, though the app runs", "refused"},
	{FaultSandboxGone, "remove the pod's sandbox under the running forward (with containerd: StopPodSandbox and RemovePodSandbox, for real)", "sandbox-gone"},
	{FaultRBAC, "a user RBAC lets get pods/portforward but not create it (1.35+: the WebSocket GET needs both)", "forbidden"},
	{FaultSkew, "a 1.36 apiserver, a 1.35 kubelet and a Node status that still declares ExtendWebSocketsToKubelet: the kubelet refuses the WebSocket (400), clients fall back to SPDY", "websocket-fallback"},
	{FaultRuntimeDies, "the runtime's streaming server dies while the bytes flow (with containerd: the daemon killed with SIGKILL)", "runtime-died"},
	{FaultStripUpgrades, "a gateway in front of the apiserver that passes requests without their Upgrade and Connection headers", "upgrade-stripped"},
	{FaultIdleDrop, "a load balancer in front of the apiserver that resets connections idle for 3 s (ELB: 60 s); the requests are sent, then again after 4.5 s", "idle-dropped"},
	{FaultStreamEOF, "the runtime hangs with the new streams waiting for their replies, then dies (as a hung runtime restarted does): the connections close under the waiting streams", "stream-eof"},
	{FaultClientReset, "the local client resets its connection (SO_LINGER 0) once the response header has come, as a cancelled download does", "client-reset"},
	{FaultSchemeMismatch, "the runtime hands the kubelet an https streaming URL for its plain-HTTP streaming server: the kubelet's TLS ClientHello gets a plain-HTTP answer", "scheme-mismatch"},
	{FaultHTTPSProxy, "the client reaches the apiserver through an HTTPS proxy (the kubeconfig's proxy-url https://...): CONNECT inside TLS, the apiserver's TLS inside that; kubectl 1.32's WebSocket cannot use it and falls back to SPDY", "https-proxy"},
	{FaultRuntimeHangs, "the runtime hangs once the forward is up: new streams are never answered, client-go gives up after 30 s (\"Timeout occurred\"); with containerd: the daemon stopped with SIGSTOP", "stream-unanswered"},
}

// FaultNames lists the faults' names.
func FaultNames() []string {
	var out []string
	for _, f := range Faults {
		out = append(out, f.Name)
	}
	return out
}

// CheckFault refuses an unknown fault, or one the rest of cfg contradicts.
func CheckFault(name string, cfg lab.Config) error {
	if name == "" {
		return nil
	}
	return applyFault(name, &cfg)
}

func applyFault(name string, cfg *lab.Config) error {
	switch name {
	case "", FaultRefused, FaultSandboxGone:
	case FaultClientReset:
	case FaultAppOnPodIP:
		if cfg.Runtime == lab.RuntimeContainerd || cfg.App != "" && cfg.App != lab.AppBuiltin {
			return fmt.Errorf("--fault %s needs the built-in app in the lab's own pod: leave out --app, and --runtime containerd", name)
		}
		cfg.AppOnPodIP = true
	case FaultRuntimeDies, FaultRuntimeHangs, FaultStreamEOF:
		if !lab.StreamsThroughRuntime(cfg.Runtime) && cfg.Runtime != "" {
			return fmt.Errorf("--fault %s needs a runtime with a streaming server (cri-streaming or containerd), not %s", name, cfg.Runtime)
		}
	case FaultRBAC:
		cfg.DenyPortForward = true
	case FaultSchemeMismatch:
		if cfg.Runtime != "" && cfg.Runtime != lab.RuntimeCRIStreaming {
			return fmt.Errorf("--fault %s needs the lab's own streaming server (--runtime %s), not %s", name, lab.RuntimeCRIStreaming, cfg.Runtime)
		}
		cfg.RuntimeHTTPS = true
	case FaultStripUpgrades:
		cfg.Middlebox = lab.MiddleboxStripUpgrades
	case FaultIdleDrop:
		cfg.Middlebox = lab.MiddleboxIdleDrop
	case FaultHTTPSProxy:
		cfg.Middlebox = lab.MiddleboxHTTPSProxy
	case FaultSkew:
		if (!cfg.Kubernetes.IsZero() && cfg.Kubernetes.Minor != 36) || (!cfg.Kubelet.IsZero() && cfg.Kubelet.Minor != 35) || cfg.APIServerBinary != "" {
			return fmt.Errorf("--fault %s sets the versions itself (a 1.36 apiserver, a 1.35 kubelet): leave out --kubernetes, --kubelet and --apiserver", name)
		}
		cfg.Kubernetes, cfg.Kubelet, cfg.StaleDeclaredFeatures = lab.Version{Minor: 36}, lab.Version{Minor: 35}, true
	default:
		return fmt.Errorf("--fault %q: want one of %s", name, strings.Join(FaultNames(), ", "))
	}
	return nil
}
