package trace

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// AgentDeploy is PrepareOptions.Agent for an agent trace runs itself as
// a pod on the target's node.
const AgentDeploy = "deploy"

// PrepareOptions say what to trace and with which agent.
type PrepareOptions struct {
	// Kubeconfig is the kubeconfig file ("": $KUBECONFIG or
	// ~/.kube/config), Overrides what the command line changes in it.
	Kubeconfig string
	Overrides  *clientcmd.ConfigOverrides
	// Target and Ports are as kubectl port-forward takes them.
	Target string
	Ports  []string
	// Agent is "" (none), AgentDeploy, or the address of a running
	// agent, with AgentToken, AgentFingerprint and KnownAgents as
	// Options has them.
	Agent, AgentToken, AgentFingerprint, KnownAgents string
	// AgentImage and AgentNamespace are for AgentDeploy.
	AgentImage, AgentNamespace string
	// Log receives the deployment's progress.
	Log io.Writer
}

// Prepared is a trace ready to start: the cluster, its target resolved,
// the agent reachable (deployed when asked) and the chain the cluster
// takes to the pod.
type Prepared struct {
	Config *rest.Config
	Target *Target
	// Path is which chain the cluster takes: the server's version and
	// what the pod's node declares.
	Path Path
	// Agent, AgentToken, AgentFingerprint and KnownAgents are Options'
	// (a deployed agent's address and credentials).
	Agent, AgentToken, AgentFingerprint, KnownAgents string
	// Deployed is the agent pod trace made, when it made one.
	Deployed *Deployed
	// RoutedBefore is the apiserver's count of how it routed WebSocket
	// port-forwards, before the trace (see RoutedSince).
	RoutedBefore Routed
	cs           kubernetes.Interface
}

// Prepare loads the kubeconfig, resolves the target as kubectl does,
// deploys the agent when asked and reads the cluster's path. Every step
// ends with ctx; Close undoes what Prepare made.
func Prepare(ctx context.Context, o PrepareOptions) (*Prepared, error) {
	cfg, ns, cs, err := LoadKubeconfig(o.Kubeconfig, o.Overrides)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	target, err := Resolve(rctx, cs, ns, o.Target, o.Ports)
	cancel()
	if err != nil {
		return nil, err
	}
	p := &Prepared{cs: cs, Config: cfg, Target: target, Agent: o.Agent, AgentToken: o.AgentToken, AgentFingerprint: o.AgentFingerprint, KnownAgents: o.KnownAgents}
	if o.Agent == AgentDeploy {
		d, err := DeployAgent(ctx, cs, cfg, target, DeployOptions{Image: o.AgentImage, Namespace: o.AgentNamespace, Log: o.Log})
		if err != nil {
			return nil, err
		}
		p.Deployed = d
		// trace made this agent's certificate: nothing to remember (its
		// local port is a new one each time).
		p.Agent, p.AgentToken, p.AgentFingerprint, p.KnownAgents = d.Addr, d.Token, d.Fingerprint, ""
	}
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	p.Path = ClusterPath(pctx, cs, target)
	pcancel()
	p.RoutedBefore = ReadRouted(ctx, cs)
	return p, nil
}

// RoutedSince is how the apiserver routed WebSocket port-forwards since
// Prepare, by its own metrics (every user's: the metric counts the whole
// apiserver); not being allowed to read them is said, not an error.
func (p *Prepared) RoutedSince(ctx context.Context) Routed {
	return ReadRouted(ctx, p.cs).Since(p.RoutedBefore)
}

// Options are the trace's options with what Prepare found; the caller
// adds its own (Address, SPDY, Event, ...).
func (p *Prepared) Options() Options {
	return Options{Config: p.Config, Target: p.Target, Agent: p.Agent, AgentToken: p.AgentToken, AgentFingerprint: p.AgentFingerprint, KnownAgents: p.KnownAgents}
}

// Close deletes the agent pod Prepare deployed, if it did.
func (p *Prepared) Close() error {
	if p.Deployed == nil {
		return nil
	}
	return p.Deployed.Remove()
}

// Header is what trace says of the session before it starts: the pod and
// how it is reached, what is tapped and by whom, and the cluster's path.
// nodeWide says the agent was asked for the node's every connection.
func (p *Prepared) Header(nodeWide bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pftap trace: pod %s/%s", p.Target.Namespace, p.Target.Pod.Name)
	if p.Target.Via != "" {
		fmt.Fprintf(&b, " (%s)", p.Target.Via)
	}
	switch {
	case p.Agent == "":
		fmt.Fprintf(&b, " through %s, L1 tapped below TLS (no agent: the node-side legs are not tapped)\n", p.Config.Host)
	case nodeWide:
		fmt.Fprintf(&b, " through %s, L1 tapped below TLS, the node's legs by pftap agent at %s (their rows on the node's clock)\n", p.Config.Host, p.Agent)
		b.WriteString("  the agent sends everything on the node's legs (node-wide): other users' sessions show too\n")
	default:
		fmt.Fprintf(&b, " through %s, L1 tapped below TLS, the node's legs by pftap agent at %s (their rows on the node's clock)\n", p.Config.Host, p.Agent)
		b.WriteString("  the agent decodes on the node and sends this session's connections only: what it leaves out is counted at the end, never shown\n")
	}
	fmt.Fprintf(&b, "  %s\n", p.Path.Says)
	return b.String()
}
