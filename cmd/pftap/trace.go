package main

import (
	"context"
	"errors"
	"fmt"
	"net"

	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pftap/pftap/agent"
	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/internal/preview"
	"github.com/pftap/pftap/internal/termout"
	"github.com/pftap/pftap/report"
	"github.com/pftap/pftap/session"
	"github.com/pftap/pftap/timeline"
	"github.com/pftap/pftap/trace"
)

// TraceOptions are the inputs of `pftap trace`.
type TraceOptions struct {
	IO         *IOStreams
	Target     string
	Ports      []string
	Kubeconfig string
	Overrides  clientcmd.ConfigOverrides
	Address    string
	SPDY       bool
	Agent      string
	// AgentToken and AgentFingerprint authenticate a pftap agent; the
	// token comes from $PFTAP_AGENT_TOKEN or AgentTokenFile, never from
	// the command line (ps shows it).
	AgentToken       string
	AgentTokenFile   string
	AgentFingerprint string
	// KnownAgents remembers pinned agents (trace.DefaultKnownAgents).
	KnownAgents string
	// AgentImage and AgentNamespace are for --agent deploy.
	AgentImage, AgentNamespace string
	// NodeWide asks the agent for every connection on the node's legs.
	NodeWide bool
	Write    string
	// HTML is a sequence diagram of the legs to write at the end.
	HTML       string
	JSON       bool
	PerRequest bool
	Verbosity  int
	NoColor    bool
	// Stop, when set, replaces waiting for a signal (tests); Ready
	// receives the forwarded ports.
	Stop  <-chan struct{}
	Ready func([]trace.PortPair)
}

func newTraceCmd(ios *IOStreams, runF func(*TraceOptions) error) *cobra.Command {
	opts := &TraceOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "trace [flags] TYPE/NAME [LOCAL:]REMOTE ...",
		Short: "kubectl port-forward, tapped: the same correlated view against a real cluster",
		Long: `pftap trace is a drop-in for kubectl port-forward that taps as it forwards.

It reads your kubeconfig as kubectl does (contexts, namespaces, client
certificates, tokens, exec plugins), resolves the target as kubectl does
(pod/NAME, NAME, svc/NAME with its target port, deploy/NAME and other
workloads with a selector; numeric and named ports), and forwards with
pftap's own client: the WebSocket tunnel first, SPDY/3.1 when the apiserver
refuses it (--spdy forces SPDY). The client's leg is tapped below TLS and
decoded live: the upgrade, every stream, every request. Failures are
explained: what an error stream's text means, why an upgrade was refused,
why the connection to the pod was lost. Ctrl-C prints the summary.

The node-side legs (the apiserver's TLS to the kubelet, the kubelet to the
runtime on the node's lo, the pod's lo, the pod's eth0) need pftap agent on
the pod's node: start it there (as root) and give trace its address and
token; trace then shows every leg, puts the node's clock on its own
(estimating the offset from requests seen both ways) and prints the per-hop
latencies. With --agent deploy, trace creates the agent pod on the pod's
node itself (privileged, host network and PID, listening on the node's
127.0.0.1 only), reaches it through the API, and deletes it when it ends.`,
		Example: `  pftap trace pod/nginx 8080:80
  pftap trace -n web svc/frontend :http
  pftap trace --context prod deploy/api 9090 -w api.pcapng
  pftap trace --agent deploy --agent-namespace kube-system pod/nginx 8080:80
  PFTAP_AGENT_TOKEN=... pftap trace --agent 127.0.0.1:10299 --agent-fingerprint SHA256 pod/nginx 8080:80
  pftap trace --agent 10.0.0.5:10299 --agent-token-file ~/.pftap-token pod/nginx 8080:80`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageError{errors.New("trace needs a target and at least one port, as kubectl port-forward: pod/nginx 8080:80")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Target, opts.Ports = args[0], args[1:]
			if err := checkWritable("-w", opts.Write); err != nil {
				return err
			}
			if err := checkWritable("--html", opts.HTML); err != nil {
				return err
			}
			switch opts.Agent {
			case "none":
			case "deploy":
				if opts.AgentImage == "" {
					return usageError{errors.New("--agent deploy needs --agent-image, an image the cluster can pull with pftap at /pftap: make one with pftap agent image -o agent.tar (kind load image-archive, ctr images import) or pftap agent image --push REGISTRY/REPO:TAG")}
				}
			default:
				if _, _, err := net.SplitHostPort(opts.Agent); err != nil {
					return usageError{fmt.Errorf("--agent %q: want none, deploy or the agent's HOST:PORT", opts.Agent)}
				}
				tok, err := readToken(opts.AgentTokenFile, "--agent-token-file")
				if err != nil {
					return err
				}
				opts.AgentToken = tok
				if opts.AgentToken == "" {
					return usageError{errors.New("--agent ADDR needs the agent's token: set PFTAP_AGENT_TOKEN or give --agent-token-file")}
				}
				if len(opts.AgentToken) < agent.MinTokenLen {
					return usageError{fmt.Errorf("the agent's token is %d characters long; agents accept only tokens of %d or more", len(opts.AgentToken), agent.MinTokenLen)}
				}
				if opts.AgentFingerprint != "" && !isFingerprint(opts.AgentFingerprint) {
					return usageError{fmt.Errorf("--agent-fingerprint %q: want the 64 hex digits pftap agent printed", opts.AgentFingerprint)}
				}
			}
			if opts.KnownAgents == "" {
				opts.KnownAgents = trace.DefaultKnownAgents()
			}
			if runF != nil {
				return runF(opts)
			}
			return traceRun(opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	clientcmd.BindOverrideFlags(&opts.Overrides, f, clientcmd.RecommendedConfigOverrideFlags(""))
	f.StringVar(&opts.Address, "address", "127.0.0.1", "local address to listen on")
	f.BoolVar(&opts.SPDY, "spdy", false, "use SPDY/3.1 instead of the WebSocket tunnel")
	f.StringVar(&opts.Agent, "agent", "none", "the node agent that taps the node-side legs: none (only L1), deploy (trace runs it as a pod on the pod's node and deletes it after), or the HOST:PORT of a pftap agent there")
	f.StringVar(&opts.AgentTokenFile, "agent-token-file", "", "a file holding the agent's token (default: $PFTAP_AGENT_TOKEN)")
	noTokenFlag(f, "agent-token", "PFTAP_AGENT_TOKEN or --agent-token-file")
	f.StringVar(&opts.AgentFingerprint, "agent-fingerprint", "", "the SHA-256 the agent printed for its certificate: trace sends nothing to an agent that does not present it (remembered for the address afterwards)")
	f.StringVar(&opts.AgentImage, "agent-image", "", "with --agent deploy: the image holding the pftap binary at /pftap (make one with pftap agent image)")
	f.StringVar(&opts.AgentNamespace, "agent-namespace", "", "with --agent deploy: the namespace of the agent pod (default: the target's)")
	f.BoolVar(&opts.NodeWide, "agent-node-wide", false, "ask the agent for every connection on the node's legs, other users' sessions included (an agent started with --allow-node-wide only; by default it sends this session's alone)")
	f.StringVarP(&opts.Write, "write", "w", "", "also record the tapped legs to this pcapng file")
	f.StringVar(&opts.HTML, "html", "", "also write a sequence diagram of the legs to this HTML file")
	f.BoolVar(&opts.PerRequest, "per-request", false, "list every request's per-hop latency (from 10 requests on they are summed up: p50, p90, p99, max)")
	f.BoolVar(&opts.JSON, "json", false, "print one JSON object per line")
	f.CountVarP(&opts.Verbosity, "verbose", "v", "-v adds every SPDY frame, -vv WebSocket frames and TCP segments")
	f.BoolVar(&opts.NoColor, "no-color", false, "no colours even on a terminal")
	return cmd
}

func traceRun(opts *TraceOptions) error {
	// client-go logs forwarding errors through klog; trace explains them.
	session.QuietUpstream()
	// Every signal from here on ends trace with its clean-up, also while
	// it deploys the agent.
	sigCtx, cancelSig := signalContext(opts.Stop)
	defer cancelSig()
	p, err := trace.Prepare(sigCtx, trace.PrepareOptions{Kubeconfig: opts.Kubeconfig, Overrides: &opts.Overrides, Target: opts.Target, Ports: opts.Ports,
		Agent: agentAddr(opts.Agent), AgentToken: opts.AgentToken, AgentFingerprint: opts.AgentFingerprint, KnownAgents: opts.KnownAgents,
		AgentImage: opts.AgentImage, AgentNamespace: opts.AgentNamespace, Log: opts.IO.ErrOut})
	if err != nil {
		return err
	}
	if p.Deployed != nil {
		defer func() {
			if err := p.Close(); err != nil {
				fmt.Fprintf(opts.IO.ErrOut, "pftap: %v\n", err)
			} else {
				fmt.Fprintf(opts.IO.ErrOut, "pftap trace: deleted agent pod %s/%s\n", p.Deployed.Pod.Namespace, p.Deployed.Pod.Name)
			}
		}()
	}
	target, path, agentAt := p.Target, p.Path, p.Agent
	// Events are written by the decoder's goroutine, the rest by this
	// one: one lock for the output.
	out := termout.NewWriter(opts.IO.Out)
	defer out.Flush()
	var sink timeline.Sink
	var tw *timeline.TextWriter
	if opts.JSON {
		sink = timeline.NewJSONWriter(out)
	} else {
		tw = timeline.NewTextWriter(out, opts.IO.OutTTY && !opts.NoColor)
		tw.PerRequest = opts.PerRequest
		if agentAt != "" {
			// The agent's legs are known only once it answers, and
			// its events may come before the widest leg's: set the
			// leg column for "L2 on the wire (TLS)" at once.
			tw.LegWidth = utf8.RuneCountInString("L2 on the wire (TLS)")
		}
		tw.FitLegs = true
		sink = tw
		fmt.Fprintf(out, "%s\n", p.Header(opts.NodeWide))
	}
	if jw, ok := sink.(*timeline.JSONWriter); ok {
		jw.Object(struct {
			Kind string `json:"kind"`
			trace.Path
		}{"path", path})
	}
	// Who made each 101 (what the agent's legs show, else what the
	// cluster's path says), the diagnosis, the hops.
	an := timeline.NewAnalysis(timeline.AnalysisOptions{KeepEvents: opts.HTML != "", Path: path.Maker})
	ctx, stop := context.WithCancel(sigCtx)
	defer stop()
	to := p.Options()
	to.Address, to.SPDY, to.Verbosity, to.Write, to.NodeWide, to.Log = opts.Address, opts.SPDY, opts.Verbosity, opts.Write, opts.NodeWide, opts.IO.ErrOut
	to.Event = func(e *decode.Event) {
		an.Note(e)
		sink.Event(e)
	}
	s, err := trace.Start(ctx, to)
	if err != nil {
		// What the legs saw of the refusal names it.
		if fs := an.Findings(1); len(fs) > 0 {
			sink.Diagnoses(fs)
		}
		return err
	}
	ports := s.Ports()
	if tw != nil && agentAt != "" {
		// Where the agent found the node's legs, by its own means.
		for _, lg := range s.Legs()[1:] {
			fmt.Fprintf(out, "  %-22s %s\n", lg.Name, lg.Description)
		}
		fmt.Fprintln(out)
	}
	if tw != nil {
		for _, p := range ports {
			fmt.Fprintf(out, "Forwarding from %s:%d -> %d\n", opts.Address, p.Local, p.Remote)
		}
		fmt.Fprintf(out, "Ctrl-C to stop and print the summary.\n")
	}
	if opts.Ready != nil {
		opts.Ready(ports)
	}
	// A status line on a terminal while it forwards: each leg's bytes and
	// rate.
	var status *termout.StatusLine
	if opts.IO.ErrTTY && !opts.JSON {
		var rates termout.Rates
		status = termout.NewStatusLine(opts.IO.ErrOut, opts.IO.Out, opts.IO.OutTTY, progressEvery, func(el time.Duration) string {
			names, bytes, drops := s.Progress()
			return rates.Line(el, names, bytes, drops)
		})
		out.Through(status)
	}
	select {
	case <-sigCtx.Done():
	case <-s.Done():
	}
	if status != nil {
		status.Stop()
		out.Through(nil)
	}
	r := s.Stop()
	if r.Wrote.Path != "" {
		fmt.Fprintf(opts.IO.ErrOut, "pftap trace: wrote %s (%d packets, %s)\n", r.Wrote.Path, r.Wrote.Packets, termout.Size(r.Wrote.Bytes))
	}
	// What client-go said while it forwarded (kubectl's words for it) is
	// evidence too.
	for _, l := range r.ClientLog {
		an.NoteClient(l.Time, "pftap", l.Line)
	}
	res := an.Result(r.Decoded)
	sink.Hops(res.Hops)
	rows := r.LegRows(res.Summary)
	// The apiserver's own account of how it routed the WebSocket.
	routed := p.RoutedSince(context.Background())
	switch {
	case tw != nil && agentAt != "":
		tw.Clock(res.Clock, res.ClockOK)
		tw.LegsTable(rows, r.AgentSent)
	case tw == nil:
		jw := sink.(*timeline.JSONWriter)
		jw.Legs(rows, r.AgentSent)
		jw.Clock(res.Clock, res.ClockOK)
	}
	if tw != nil && len(r.ClientLog) > 0 {
		fmt.Fprintf(out, "\npftap's port-forward client (client-go) reported:\n")
		for _, l := range r.ClientLog {
			fmt.Fprintf(out, "  %11s  %s\n", tw.Since(l.Time), preview.Text(l.Line, 300))
		}
		if r.ClientLogMore > 0 {
			fmt.Fprintf(out, "  … and %d more (not kept)\n", r.ClientLogMore)
		}
	}
	if jw, ok := sink.(*timeline.JSONWriter); ok {
		for _, l := range r.ClientLog {
			jw.Object(map[string]any{"kind": "client_log", "client": "pftap", "ts": l.Time, "line": l.Line})
		}
	}
	if tw != nil {
		fmt.Fprintf(out, "\n%s\n", routed.Says("trace"))
	} else {
		sink.(*timeline.JSONWriter).Object(struct {
			Kind string `json:"kind"`
			trace.Routed
		}{"apiserver_routed", routed})
	}
	sink.Diagnoses(res.Findings)
	sink.Summary(res.Summary)
	var htmlErr error
	if opts.HTML != "" {
		title := fmt.Sprintf("pftap trace %s/%s", target.Namespace, target.Pod.Name)
		if err := report.WriteHTMLFile(opts.HTML, timeline.HTMLPage{Title: title, Scenario: path.Says}, res.Events, res.Hops); err != nil {
			htmlErr = fmt.Errorf("--html %s: %w", opts.HTML, err)
		} else {
			fmt.Fprintf(opts.IO.ErrOut, "pftap trace: wrote %s\n", opts.HTML)
		}
	}
	// A failed write shows in both: the writer's own error, once.
	if err := out.Flush(); err != nil {
		return err
	}
	if err := sink.Err(); err != nil {
		return err
	}
	if r.Lost == nil {
		return htmlErr
	}
	return r.Lost
}

func agentAddr(a string) string {
	if a == "none" {
		return ""
	}
	return a
}
