package labrun

import (
	"errors"
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
	// Kubernetes and Kubelet are the era the fault needs, when it sets
	// its own ("": the user's), and StaleNodeStatus the Node's status
	// declaring what its kubelet no longer does.
	Kubernetes, Kubelet string
	StaleNodeStatus     bool
	// Requests are the requests sent when none are given: what the fault
	// needs in flight.
	Requests []string
}

// Faults lists them, for --help and the tests.
var Faults = []Fault{
	{Name: FaultRefused, About: "forward to a port nothing listens on in the pod: the runtime's dial to localhost is refused", Finding: "refused"},
	{Name: FaultAppOnPodIP, About: "the built-in app listens on the pod's IP only: the runtime's dial to localhost is refused, though the app runs", Finding: "refused"},
	{Name: FaultSandboxGone, About: "remove the pod's sandbox under the running forward (with containerd: StopPodSandbox and RemovePodSandbox, for real)", Finding: "sandbox-gone"},
	{Name: FaultRBAC, About: "a user RBAC lets get pods/portforward but not create it (1.35+: the WebSocket GET needs both)", Finding: "forbidden"},
	{Name: FaultSkew, About: "a 1.36 apiserver, a 1.35 kubelet and a Node status that still declares ExtendWebSocketsToKubelet: the kubelet refuses the WebSocket (400), clients fall back to SPDY", Finding: "websocket-fallback",
		Kubernetes: "1.36", Kubelet: "1.35", StaleNodeStatus: true},
	{Name: FaultRuntimeDies, About: "the runtime's streaming server dies while the bytes flow (with containerd: the daemon killed with SIGKILL)", Finding: "runtime-died",
		Requests: []string{"GET /bytes?n=1000000000"}}, // bytes in flight when it dies
	{Name: FaultStripUpgrades, About: "a gateway in front of the apiserver that passes requests without their Upgrade and Connection headers", Finding: "upgrade-stripped"},
	{Name: FaultIdleDrop, About: "a load balancer in front of the apiserver that resets connections idle for 3 s (ELB: 60 s); the requests are sent, then again after 4.5 s", Finding: "idle-dropped"},
	{Name: FaultStreamEOF, About: "the runtime hangs with the new streams waiting for their replies, then dies (as a hung runtime restarted does): the connections close under the waiting streams", Finding: "stream-eof"},
	{Name: FaultClientReset, About: "the local client resets its connection (SO_LINGER 0) once the response header has come, as a cancelled download does", Finding: "client-reset",
		Requests: []string{"GET /bytes?n=67108864"}}, // cancelled part way
	{Name: FaultSchemeMismatch, About: "the runtime hands the kubelet an https streaming URL for its plain-HTTP streaming server: the kubelet's TLS ClientHello gets a plain-HTTP answer", Finding: "scheme-mismatch"},
	{Name: FaultHTTPSProxy, About: "the client reaches the apiserver through an HTTPS proxy (the kubeconfig's proxy-url https://...): CONNECT inside TLS, the apiserver's TLS inside that; kubectl 1.32's WebSocket cannot use it and falls back to SPDY", Finding: "https-proxy"},
	{Name: FaultRuntimeHangs, About: "the runtime hangs once the forward is up: new streams are never answered, client-go gives up after 30 s (\"Timeout occurred\"); with containerd: the daemon stopped with SIGSTOP", Finding: "stream-unanswered"},
}

// FaultByName is the fault called name.
func FaultByName(name string) (Fault, bool) {
	for _, f := range Faults {
		if f.Name == name {
			return f, true
		}
	}
	return Fault{}, false
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
	if cfg.KubeletBinary != "" {
		switch name {
		case "", FaultRefused, FaultRBAC, FaultStripUpgrades, FaultIdleDrop, FaultClientReset, FaultHTTPSProxy:
			// Made in front of the node, or by the request itself.
		default:
			return fmt.Errorf("--fault %s is made on the node, which pftap's own kubelet lets the lab do: leave out --kubelet-binary", name)
		}
	}
	if f, ok := FaultByName(name); ok && f.Kubernetes != "" {
		// A fault of its own era: the versions it needs, and no others.
		api, err1 := lab.ParseVersion(f.Kubernetes)
		node, err2 := lab.ParseVersion(f.Kubelet)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		if (!cfg.Kubernetes.IsZero() && cfg.Kubernetes != api) || (!cfg.Kubelet.IsZero() && cfg.Kubelet != node) || cfg.APIServerBinary != "" || cfg.KubeletBinary != "" {
			return fmt.Errorf("--fault %s sets the versions itself (a %s apiserver, a %s kubelet): leave out --kubernetes, --kubelet and --apiserver", name, f.Kubernetes, f.Kubelet)
		}
		cfg.Kubernetes, cfg.Kubelet, cfg.StaleDeclaredFeatures = api, node, f.StaleNodeStatus
	}
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
	default:
		return fmt.Errorf("--fault %q: want one of %s", name, strings.Join(FaultNames(), ", "))
	}
	return nil
}
