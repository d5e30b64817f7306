package session

// Client is the port-forward client of a session.
type Client string

const (
	// Pftap is pftap's own client (client-go's), tapped below TLS inside
	// it.
	Pftap Client = "pftap"
	// Kubectl is the real kubectl port-forward; in a lab, L1 is tapped
	// below TLS inside the lab's apiserver.
	Kubectl Client = "kubectl"
)

// Description is what a session says of itself: the header its rendering
// starts with (who forwards to which pod, and the chain), the pod's
// network namespace, and, once it has ended, what the app logged.
type Description struct {
	Header   string
	PodNetns string
	// AppLog is what the built-in app logged: the ground truth of which
	// connection on the pod's lo asked for what.
	AppLog []AppRequest
	// ClientLog is what the client said of what failed while it ran, in
	// its own words: kubectl's output but for its "Forwarding from" and
	// "Handling connection" lines ("lost connection to pod", "Timeout
	// occurred", ...); for pftap's client, client-go's errors as kubectl
	// prints them. Client is the client's name ("kubectl", "pftap").
	ClientLog []string
	Client    Client
	// Facts say what ran, for JSON and recordings.
	Facts Facts
	// Routed is how the real kube-apiserver, by its own metrics, routed
	// the session's WebSocket port-forwards (nil with pftap's own).
	Routed *Routed
}

// Facts are what a lab session ran: the chain's era and versions, the
// runtime, the app, the client and its version.
type Facts struct {
	// Kubernetes is the apiserver's version (its /version gitVersion),
	// Kubelet the node's; APIServer says which apiserver ran ("pftap's
	// own", or "kube-apiserver" for the real one), KubeletIs which
	// kubelet ("pftap's own", or "kubelet" for the real one).
	Kubernetes string `json:"kubernetes"`
	Kubelet    string `json:"kubelet"`
	APIServer  string `json:"apiserver"`
	KubeletIs  string `json:"kubelet_is,omitempty"`
	// Era is the sentence that says which hop answers the client's
	// WebSocket and what L2 carries.
	Era     string `json:"era"`
	Runtime string `json:"runtime"`
	// RuntimeVersion is the runtime daemon's version (containerd's).
	RuntimeVersion string `json:"runtime_version,omitempty"`
	App            string `json:"app"`
	// Client is "pftap" or "kubectl"; ClientVersion its version
	// (kubectl's own, or pftap's client-go's); ClientPath kubectl's
	// binary.
	Client        Client `json:"client"`
	ClientVersion string `json:"client_version,omitempty"`
	ClientPath    string `json:"client_path,omitempty"`
	// SPDY: the client spoke SPDY/3.1 (kubectl: the lab refused its
	// WebSocket).
	SPDY  bool   `json:"spdy,omitempty"`
	Fault string `json:"fault,omitempty"`
}
