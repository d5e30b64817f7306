package main

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pftap/pftap/agent"
)

// AgentOptions are the inputs of `pftap agent`.
type AgentOptions struct {
	IO             *IOStreams
	Listen         string
	Token          string
	TokenFile      string
	ExitWhenIdle   time.Duration
	Once           bool
	Netns          string
	KubeletPort    int
	StreamingPorts []int
	// AllowNodeWide lets a trace ask for every connection of the node's
	// legs (trace --agent-node-wide).
	AllowNodeWide bool
	// MaxSendRate bounds what the agent sends a trace, bytes a second.
	MaxSendRate int64
	// Stop, when set, replaces waiting for a signal (tests); Ready gets
	// the listening address and the agent.
	Stop  <-chan struct{}
	Ready func(addr string, a *agent.Agent)
}

func newAgentCmd(ios *IOStreams, runF func(*AgentOptions) error) *cobra.Command {
	opts := &AgentOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "The node side of pftap trace: taps the legs only the node sees",
		Long: `pftap agent runs on the node that hosts the pod (as root, or in a privileged
pod with hostNetwork and hostPID) and taps, for each pftap trace that connects
to it: the apiserver's TLS connection to the kubelet (record sizes and
timing), the kubelet's plaintext SPDY to the runtime's streaming server on the
node's lo (its port found from the sockets listening on 127.0.0.1), the pod's
lo in the namespace found from the pod's IP, and the pod's eth0 as the
witness. It decodes them on the node, as pftap lab decodes its legs, and
sends each trace, over TLS, the events of that trace's own port-forward only
(the other connections of the legs, other users' sessions among them, are
left out and counted); the frames themselves cross only for trace -w. trace
sends nothing before the agent presents the certificate whose fingerprint it
prints, then presents the token (PFTAP_AGENT_TOKEN or --token-file, at least 16
characters; one is made and printed when neither is given). The agent never
taps its own traffic: its port, and the connections that carry its stream
to trace (found when each session starts), are left out of every leg.`,
		Example: `  sudo pftap agent
  sudo PFTAP_AGENT_TOKEN=$(cat token) pftap agent --listen 10.0.0.5:10299 --streaming-port 35000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := readToken(opts.TokenFile, "--token-file")
			if err != nil {
				return err
			}
			opts.Token = tok
			if opts.Token != "" && len(opts.Token) < agent.MinTokenLen {
				return usageError{fmt.Errorf("the token is %d characters long; at least %d are needed", len(opts.Token), agent.MinTokenLen)}
			}
			if _, _, err := net.SplitHostPort(opts.Listen); err != nil {
				return usageError{fmt.Errorf("--listen %q: want HOST:PORT (an IPv6 address in brackets: [::1]:10299)", opts.Listen)}
			}
			if opts.MaxSendRate < 0 {
				return usageError{fmt.Errorf("--max-send-rate %d: want bytes a second, or 0 for no bound", opts.MaxSendRate)}
			}
			if opts.ExitWhenIdle < 0 {
				return usageError{fmt.Errorf("--exit-when-idle %s: want a positive duration, or 0 for never", opts.ExitWhenIdle)}
			}
			if runF != nil {
				return runF(opts)
			}
			return agentRun(opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Listen, "listen", "127.0.0.1:10299", "address to accept pftap trace on")
	f.StringVar(&opts.TokenFile, "token-file", "", "a file holding the token trace must present (default: $PFTAP_AGENT_TOKEN, or a new one, printed)")
	noTokenFlag(f, "token", "PFTAP_AGENT_TOKEN or --token-file")
	f.DurationVar(&opts.ExitWhenIdle, "exit-when-idle", 0, "end once no trace session has run for this long (0: never; a deployed agent uses 20s)")
	f.BoolVar(&opts.Once, "once", false, "serve one trace session: the token is refused after it is used, and the agent ends with that session (a deployed agent does)")
	f.StringVar(&opts.Netns, "netns", "", "the node's network namespace (default: the agent's own)")
	f.IntVar(&opts.KubeletPort, "kubelet-port", 10250, "the kubelet's port")
	f.IntSliceVar(&opts.StreamingPorts, "streaming-port", nil, "the runtime streaming server's port on the node's lo (default: found)")
	f.BoolVar(&opts.AllowNodeWide, "allow-node-wide", false, "let a trace ask for every connection on the node's legs, other users' port-forwards included (trace --agent-node-wide); without it each trace gets its own session only")
	f.Int64Var(&opts.MaxSendRate, "max-send-rate", 0, "bound what the agent sends a trace, in bytes a second (0: none); frames recorded with trace -w then lose their payloads first, the decoded session always goes")
	cmd.AddCommand(newAgentImageCmd(ios))
	return cmd
}

func agentRun(opts *AgentOptions) error {
	if os.Geteuid() != 0 {
		return errors.New("pftap agent needs root (packet sockets, the pod's network namespace)")
	}
	token := opts.Token
	made := false
	if token == "" {
		b := make([]byte, 18)
		rand.Read(b)
		token, made = hex.EncodeToString(b), true
	}
	ao := agent.Options{Token: token, Netns: opts.Netns, KubeletPort: opts.KubeletPort, StreamingPorts: opts.StreamingPorts, Log: opts.IO.ErrOut, ExitWhenIdle: opts.ExitWhenIdle, Once: opts.Once,
		AllowNodeWide: opts.AllowNodeWide, MaxSendRate: opts.MaxSendRate}
	// A deployed agent gets its certificate from trace, which pins it.
	if c, k := os.Getenv(agent.EnvCert), os.Getenv(agent.EnvKey); c != "" && k != "" {
		cert, err := tls.X509KeyPair([]byte(c), []byte(k))
		if err != nil {
			return fmt.Errorf("%s/%s: %w", agent.EnvCert, agent.EnvKey, err)
		}
		ao.Certificate = &cert
	}
	a, err := agent.New(ao)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Fprintf(opts.IO.Out, "pftap agent: listening on %s, certificate sha256 %s\n", l.Addr(), a.Fingerprint)
	addr := l.Addr().(*net.TCPAddr)
	traceAddr := l.Addr().String()
	if addr.IP.IsUnspecified() {
		fmt.Fprintf(opts.IO.ErrOut, "pftap agent: warning: %s is every address of this machine: whoever reaches any of them can try the token. Prefer 127.0.0.1 (reached with a port-forward or an SSH tunnel) or one node address\n", l.Addr())
		traceAddr = net.JoinHostPort("NODE-ADDRESS", strconv.Itoa(addr.Port))
	}
	if made {
		fmt.Fprintf(opts.IO.Out, "  token: %s\n", token)
	}
	fmt.Fprintf(opts.IO.Out, "  pftap trace --agent %s --agent-fingerprint %s ... (with PFTAP_AGENT_TOKEN set)\n", traceAddr, a.Fingerprint)
	if opts.Ready != nil {
		opts.Ready(l.Addr().String(), a)
	}
	stop, cancel := stopOrSignal(opts.Stop)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- a.Serve(l) }()
	select {
	case <-stop:
		return nil
	case err := <-errc:
		if errors.Is(err, agent.ErrIdle) {
			fmt.Fprintf(opts.IO.ErrOut, "pftap agent: no trace session for %s: exiting\n", opts.ExitWhenIdle)
			return nil
		}
		if errors.Is(err, agent.ErrSessionEnded) {
			fmt.Fprintf(opts.IO.ErrOut, "pftap agent: its one trace session ended: exiting\n")
			return nil
		}
		return err
	}
}

// readToken is the token in file, or else $PFTAP_AGENT_TOKEN, without
// surrounding white space.
func readToken(file, flag string) (string, error) {
	if file == "" {
		return strings.TrimSpace(os.Getenv(agent.EnvToken)), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", usageError{fmt.Errorf("%s: %w", flag, err)}
	}
	return strings.TrimSpace(string(b)), nil
}

// noTokenFlag keeps a removed flag that would put a secret in ps output,
// to refuse it with the way to do it instead.
func noTokenFlag(f *pflag.FlagSet, name, instead string) {
	f.Var(refusedFlag{name: name, instead: instead}, name, "")
	f.MarkHidden(name)
}

type refusedFlag struct{ name, instead string }

func (r refusedFlag) String() string { return "" }
func (r refusedFlag) Type() string   { return "string" }
func (r refusedFlag) Set(string) error {
	return fmt.Errorf("a token on the command line is visible to every user in ps: use %s", r.instead)
}

func isFingerprint(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}
