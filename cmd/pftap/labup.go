package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/signal"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pftap/pftap/lab"
	"github.com/pftap/pftap/session"
	"github.com/spf13/cobra"
)

// LabUpOptions are the inputs of `pftap lab up`.
type LabUpOptions struct {
	IO          *IOStreams
	Name        string
	Runtime     string
	App         string
	AppPort     int
	NoWebSocket bool
	era         eraFlags
	Kubeconfig  string
	Subnet      string
	// Stop, when set, replaces waiting for a signal (tests).
	Stop <-chan struct{}
}

func newLabUpCmd(ios *IOStreams, runF func(*LabUpOptions) error) *cobra.Command {
	opts := &LabUpOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a lab and keep it running until Ctrl-C or `pftap lab down`",
		Example: `  sudo pftap lab up
  sudo pftap lab up --runtime socat --app nginx --kubeconfig ./lab.kubeconfig
  sudo pftap lab up --kubernetes 1.35       # the apiserver tunnels WebSocket into SPDY towards the kubelet
  sudo pftap lab up --kubernetes 1.36 --kubelet 1.35   # version skew: the node declares nothing, the apiserver tunnels
  sudo pftap lab up --kubernetes 1.30       # before 1.31: kubectl's WebSocket is refused (400), it falls back to SPDY`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkRuntime(opts.Runtime, opts.App); err != nil {
				return err
			}
			if err := opts.era.check(opts.Runtime, opts.NoWebSocket); err != nil {
				return err
			}
			if opts.Subnet != "" {
				if _, err := netip.ParsePrefix(opts.Subnet); err != nil {
					return usageError{fmt.Errorf("--subnet %q is not a prefix like 10.250.9.0/24", opts.Subnet)}
				}
			}
			if runF != nil {
				return runF(opts)
			}
			return labUpRun(opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Runtime, "runtime", lab.RuntimeCRIStreaming, runtimeHelp)
	f.StringVar(&opts.App, "app", lab.AppBuiltin, "the pod's app: builtin, nginx, or a shell command listening on localhost:--app-port")
	f.IntVar(&opts.AppPort, "app-port", 80, "the port the app listens on in the pod")
	f.BoolVar(&opts.NoWebSocket, "no-websocket", false, "an apiserver from before 1.31 (--kubernetes 1.30): WebSocket is not tunnelled, clients fall back to SPDY")
	opts.era.bind(f)
	f.StringVar(&opts.Kubeconfig, "kubeconfig", "", "where to write the lab's kubeconfig (default: in the lab's directory)")
	f.StringVar(&opts.Subnet, "subnet", "", "the lab's private /24 (default: the first free one in 10.250.0.0/16)")
	f.StringVar(&opts.Name, "name", "", "the lab's name (default: pftap-<pid>-1)")
	return cmd
}

func labUpRun(opts *LabUpOptions) error {
	session.QuietUpstream()
	// A lab killed earlier may have left namespaces behind: clean first.
	if done, _ := lab.Clean(); len(done) > 0 {
		fmt.Fprintf(opts.IO.ErrOut, "pftap: cleaned up after a lab that died: %s\n", strings.Join(done, ", "))
	}
	cfg := lab.Config{Name: opts.Name, Runtime: opts.Runtime, App: opts.App, AppPort: opts.AppPort, NoWebSocket: opts.NoWebSocket}
	opts.era.apply(&cfg)
	if opts.Kubeconfig != "" {
		abs, err := filepath.Abs(opts.Kubeconfig)
		if err != nil {
			return err
		}
		cfg.Kubeconfig = abs
	}
	if opts.Subnet != "" {
		cfg.Subnet = netip.MustParsePrefix(opts.Subnet)
	}
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	defer stop()
	l, err := lab.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		l.Close()
		fmt.Fprintf(opts.IO.ErrOut, "pftap: lab %s is gone (%v)\n", l.Config().Name, l.Gone.Round(time.Millisecond))
	}()
	printLab(opts.IO, l)
	if opts.Stop != nil {
		select {
		case <-opts.Stop:
		case <-ctx.Done():
		}
	} else {
		<-ctx.Done()
	}
	return nil
}

func printLab(ios *IOStreams, l *lab.Lab) {
	c := l.Config()
	app := c.App
	if app == lab.AppBuiltin {
		app = "the built-in app (/, /bytes?n=N, /echo)"
	}
	ws := "WebSocket and SPDY"
	if c.NoWebSocket {
		ws = "SPDY only (WebSocket refused)"
	}
	api := "pftap's own apiserver"
	if v := l.APIServerVersion(); v != "" {
		api = "the real kube-apiserver " + v + " (on etcd)"
	}
	if v := l.KubeletVersion(); v != "" {
		api += ", the real kubelet " + v
	}
	fmt.Fprintf(ios.Out, "pftap lab %s is up in %v: %s, %s runtime, %s, the apiserver accepts %s\n  %s\n\n", c.Name, l.Ready.Round(100*time.Microsecond), api, c.Runtime, app, ws, c.Era())
	tw := tabwriter.NewWriter(ios.Out, 0, 4, 2, ' ', 0)
	for _, leg := range l.Legs {
		where := "host"
		if leg.Netns != "" {
			where = "netns " + leg.Netns
		}
		tls := ""
		if leg.TLS {
			tls = " (TLS)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s, %s\t→ %s%s\n", leg.ID, leg.Name, where, leg.Interface, leg.Server, tls)
	}
	tw.Flush()
	fmt.Fprintf(ios.Out, "\n  pod %s/%s, IP %s\n\nUse it:\n  export KUBECONFIG=%s\n  kubectl port-forward pod/%s 10080:%d\n  curl http://127.0.0.1:10080/\n\n",
		c.Namespace, c.Pod, l.PodIP(), l.Kubeconfig, c.Pod, c.AppPort)
	fmt.Fprintf(ios.Out, "Capture a leg:  pftap capture --netns %s -i lo\nStop it with Ctrl-C or: pftap lab down %s\n", l.PodNetns, c.Name)
}

func newLabDownCmd(ios *IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "down [NAME]",
		Short: "Stop a running lab (the only one, or NAME)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			st, err := lab.Down(name, 20*time.Second)
			if errors.Is(err, lab.ErrSeveralLabs) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(ios.Out, "lab %s is down\n", st.Name)
			return nil
		},
	}
}

func newLabStatusCmd(ios *IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "List labs, running or left behind",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			states, err := lab.ListStates()
			if err != nil {
				return err
			}
			if len(states) == 0 {
				fmt.Fprintln(ios.Out, "no labs")
				return nil
			}
			tw := tabwriter.NewWriter(ios.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATE\tPID\tRUNTIME\tAPP\tAPISERVER\tPOD IP\tAGE\tKUBECONFIG")
			for _, st := range states {
				state := "running"
				if !st.Alive {
					state = "dead (pftap lab clean)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", st.Name, state, st.PID, st.Runtime, st.App, st.APIServer, st.PodIP,
					time.Since(st.Started).Round(time.Second), st.Kubeconfig)
			}
			return tw.Flush()
		},
	}
}

func newLabCleanCmd(ios *IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "clean",
		Short: "Remove what labs that died (SIGKILL, a crash) left behind",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			done, err := lab.Clean()
			for _, d := range done {
				fmt.Fprintln(ios.Out, d)
			}
			if err == nil && len(done) == 0 {
				fmt.Fprintln(ios.Out, "nothing to clean")
			}
			return err
		},
	}
}
