package main

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/pftap/pftap/internal/agent"
)

// AgentOptions are the inputs of `pftap agent`.
type AgentOptions struct {
	IO             *IOStreams
	Listen         string
	Token          string
	Netns          string
	KubeletPort    int
	StreamingPorts []int
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
witness. It streams them to trace as pcapng over TLS; trace must present the
token (--token or PFTAP_AGENT_TOKEN; one is made and printed when neither is
given) and can pin the certificate fingerprint the agent prints.`,
		Example: `  sudo pftap agent --listen 0.0.0.0:10299
  sudo PFTAP_AGENT_TOKEN=s3cret pftap agent --listen 10.0.0.5:10299 --streaming-port 35000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Token == "" {
				opts.Token = os.Getenv(agent.EnvToken)
			}
			if _, _, err := net.SplitHostPort(opts.Listen); err != nil {
				return usageError{fmt.Errorf("--listen %q: want HOST:PORT", opts.Listen)}
			}
			if runF != nil {
				return runF(opts)
			}
			return agentRun(opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Listen, "listen", "127.0.0.1:10299", "address to accept pftap trace on")
	f.StringVar(&opts.Token, "token", "", "the token trace must present (default: $PFTAP_AGENT_TOKEN, or a new one, printed)")
	f.StringVar(&opts.Netns, "netns", "", "the node's network namespace (default: the agent's own)")
	f.IntVar(&opts.KubeletPort, "kubelet-port", 10250, "the kubelet's port")
	f.IntSliceVar(&opts.StreamingPorts, "streaming-port", nil, "the runtime streaming server's port on the node's lo (default: found)")
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
	ao := agent.Options{Token: token, Netns: opts.Netns, KubeletPort: opts.KubeletPort, StreamingPorts: opts.StreamingPorts, Log: opts.IO.ErrOut}
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
	if made {
		fmt.Fprintf(opts.IO.Out, "  token: %s\n", token)
	}
	fmt.Fprintf(opts.IO.Out, "  pftap trace --agent %s --agent-fingerprint %s ... (with PFTAP_AGENT_TOKEN set)\n", l.Addr(), a.Fingerprint)
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
		return err
	}
}
