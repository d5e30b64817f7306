package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/labrun"

	"github.com/pftap/pftap/session"

	"github.com/spf13/cobra"

	"github.com/pftap/pftap/lab"
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

func newLabCmd(ios *IOStreams) *cobra.Command {
	opts := &LabRunOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "A miniature cluster with the real Kubernetes server code at every hop",
		Long: `The lab builds the whole port-forward chain on this machine, in network namespaces:
an apiserver (TLS, the upstream upgrade-aware proxy and WebSocket tunnelling
handler), a node with a kubelet on :10250 and a container runtime (containerd's
streaming server, or the dockershim's nsenter+socat), and a pod whose app listens
on its loopback. Real kubectl works against it. Needs root.

With no subcommand, pftap lab runs the main job: it builds a lab, taps every
leg (L1 and L2 below TLS inside pftap's client or the lab's servers, L2 also
on the wire, L3 on the node's lo, L4 on the pod's lo, the pod's eth0 as a
witness, the requests inside pftap's HTTP client), port-forwards (pftap's own
client, or --client kubectl), sends the requests through it, tears the lab
down, and prints the legs side by side with the latency of every hop. Each
leg is decoded where its frames arrive (the timeline appears during the run,
50 ms behind the traffic) and nothing is kept; with -w every leg is also
written to the file as the run goes (a killed run leaves a readable file),
and what is known only at the end (the results, the app's log, drops) when
it ends. Arguments are checked before anything is built; Ctrl-C, SIGTERM
and SIGHUP stop the run within a few hundred ms and remove the lab.`,
		Example: `  sudo pftap lab
  sudo pftap lab --runtime socat --request 'GET /bytes?n=1000000'     # the dockershim's chain (1.23)
  sudo pftap lab --kubernetes 1.35 --client kubectl                  # the apiserver tunnels; SPDY on L2
  sudo pftap lab --concurrency 5 --request / --request /bytes?n=1000 --repeat 5 -w session.pcapng`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validateLabRun(opts); err != nil {
				return err
			}
			return labRun(opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Runtime, "runtime", lab.RuntimeCRIStreaming, runtimeHelp)
	f.StringVar(&opts.App, "app", lab.AppBuiltin, "the pod's app: builtin, nginx, or a shell command listening on localhost:80")
	f.StringVar(&opts.Client, "client", "pftap", "the port-forward client: pftap (its own, WebSocket first with SPDY fallback, tapped below TLS) or kubectl (the real one)")
	f.StringVar(&opts.Kubectl, "kubectl", "", "with --client kubectl: the kubectl binary to run (default: $PFTAP_KUBECTL, else kubectl on PATH, else /usr/bin/kubectl); the header says its version")
	f.BoolVar(&opts.SPDY, "spdy", false, "use SPDY instead of the WebSocket tunnel (kubectl has no switch for it: the lab refuses its WebSocket upgrade and it falls back)")
	f.BoolVar(&opts.NoWebSocket, "no-websocket", false, "an apiserver from before 1.31 (--kubernetes 1.30): WebSocket is not tunnelled, clients fall back to SPDY")
	opts.era.bind(f)
	f.StringArrayVar(&opts.Requests, "request", nil, "a request to send through the port-forward, like 'GET /bytes?n=100000' (repeatable; default GET /)")
	f.IntVar(&opts.Concurrency, "concurrency", 1, "how many requests at a time (at most the number of requests sent)")
	f.IntVar(&opts.Repeat, "repeat", 1, "send each request this many times (each on its own connection)")
	f.DurationVar(&opts.HeaderTimeout, "header-timeout", session.DefaultHeaderTimeout, "how long a request waits for its response's header (a body takes as long as it takes)")
	f.StringVar(&opts.Fault, "fault", "", faultHelp())
	f.IntVar(&opts.RemotePort, "remote-port", 0, "forward to this port in the pod (default: the app's, 80); one where nothing listens shows the error stream")
	f.StringVarP(&opts.Write, "write", "w", "", "also write every leg to a pcapng file (one interface per leg)")
	f.BoolVar(&opts.PerRequest, "per-request", false, "list every request's per-hop latency (from 10 requests on they are summed up: p50, p90, p99, max)")
	f.BoolVar(&opts.JSON, "json", false, "print one JSON object per line instead")
	f.StringVar(&opts.HTML, "html", "", "also write a sequence diagram of the legs to this HTML file")
	f.CountVarP(&opts.Verbosity, "verbose", "v", "-v adds every SPDY frame, -vv WebSocket frames and TCP segments")
	f.BoolVar(&opts.NoColor, "no-color", false, "no colours even on a terminal")
	cmd.AddCommand(newLabUpCmd(ios, nil), newLabDownCmd(ios), newLabStatusCmd(ios), newLabCleanCmd(ios))
	return cmd
}

// validateLabRun checks everything about a `pftap lab` command line that
// can be checked before the lab is built, so that a mistake costs nothing:
// no namespace made, no file left.
func validateLabRun(opts *LabRunOptions) error {
	if err := checkRuntime(opts.Runtime, opts.App); err != nil {
		return err
	}
	if opts.Client != "kubectl" && opts.Client != "pftap" {
		return usageError{fmt.Errorf("--client %q: want pftap or kubectl", opts.Client)}
	}
	fault, _ := labrun.FaultByName(opts.Fault)
	if fault.Kubernetes != "" {
		if opts.era.kubernetes != "" || opts.era.kubelet != "" || opts.era.binary != "" {
			return usageError{fmt.Errorf("--fault %s sets the versions itself (a %s apiserver, a %s kubelet): leave out --kubernetes, --kubelet and --apiserver", opts.Fault, fault.Kubernetes, fault.Kubelet)}
		}
		opts.era.kubernetes, opts.era.kubelet, opts.era.stale = fault.Kubernetes, fault.Kubelet, fault.StaleNodeStatus
	}
	if err := opts.era.check(opts.Runtime, opts.NoWebSocket); err != nil {
		return err
	}
	if err := labrun.CheckFault(opts.Fault, lab.Config{Runtime: opts.Runtime, App: opts.App, Kubernetes: opts.era.apiserver, Kubelet: opts.era.node}); err != nil {
		return usageError{err}
	}
	if len(opts.Requests) == 0 {
		opts.Requests = fault.Requests
	}
	if opts.RemotePort < 0 || opts.RemotePort > 65535 {
		return usageError{fmt.Errorf("--remote-port %d: want a port number", opts.RemotePort)}
	}
	if opts.Repeat < 1 {
		return usageError{fmt.Errorf("--repeat %d: want 1 or more", opts.Repeat)}
	}
	if opts.HeaderTimeout <= 0 {
		return usageError{fmt.Errorf("--header-timeout %s: want a positive duration", opts.HeaderTimeout)}
	}
	if len(opts.Requests) == 0 {
		opts.Requests = []string{"GET /"}
	}
	for _, r := range opts.Requests {
		if _, err := session.ParseRequest(r); err != nil {
			return usageError{fmt.Errorf("--request %q: %w", r, err)}
		}
	}
	if opts.Repeat > 1 {
		var all []string
		for _, r := range opts.Requests {
			for range opts.Repeat {
				all = append(all, r)
			}
		}
		opts.Requests, opts.Repeat = all, 1
	}
	if opts.Concurrency < 1 {
		return usageError{errors.New("--concurrency must be at least 1")}
	}
	if opts.Concurrency > len(opts.Requests) {
		return usageError{fmt.Errorf("--concurrency %d with %d request(s): nothing would run beside them; give more --request, or --repeat %d", opts.Concurrency, len(opts.Requests), opts.Concurrency)}
	}
	if opts.Runtime == lab.RuntimeSocat {
		if _, err := exec.LookPath("socat"); err != nil {
			return fmt.Errorf("--runtime socat runs socat in the pod's namespace, as the dockershim did, and socat is not installed (apt-get install socat)")
		}
	}
	if opts.Client == "kubectl" {
		if opts.Kubectl == "" {
			opts.Kubectl = kubectl.Path
		}
		// The kubectl that will run is the one checked.
		if fi, err := os.Stat(opts.Kubectl); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("--client kubectl runs %s, which is not an executable (give --kubectl PATH, or set PFTAP_KUBECTL)", opts.Kubectl)
		}
	} else if opts.Kubectl != "" {
		return usageError{errors.New("--kubectl is the binary of --client kubectl")}
	}
	for _, out := range []struct{ flag, path string }{{"-w", opts.Write}, {"--html", opts.HTML}} {
		if err := checkWritable(out.flag, out.path); err != nil {
			return err
		}
	}
	return nil
}

// checkWritable says, before anything runs, whether an output file can be
// written, without leaving anything behind.
func checkWritable(flag, path string) error {
	if path == "" {
		return nil
	}
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return fmt.Errorf("%s %s: is a directory", flag, path)
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("%s %s: %w", flag, path, errors.Unwrap(err))
		}
		return f.Close()
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%s %s: the directory %s does not exist", flag, path, dir)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s %s: %s is not a directory", flag, path, dir)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%s %s: %w", flag, path, errors.Unwrap(err))
	}
	f.Close()
	return os.Remove(path)
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
			st, err := lab.Down(name, 5*time.Second)
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

const runtimeHelp = "the node's runtime: cri-streaming (upstream's streaming server in-process, as containerd 2.3+ and CRI-O embed it), containerd (Debian's containerd daemon with its CRI plugin, CNI and runc) or socat (the dockershim: the kubelet runs nsenter socat)"

// checkRuntime checks --runtime, and that the real containerd daemon is
// installed when it is asked for.
func checkRuntime(runtime, app string) error {
	switch runtime {
	case lab.RuntimeCRIStreaming, lab.RuntimeSocat:
		return nil
	case lab.RuntimeContainerd:
		if app != lab.AppBuiltin && app != lab.AppNginx {
			return usageError{fmt.Errorf("--app %q: with --runtime containerd the pod runs the built-in app or nginx (an image the lab builds), not a shell command", app)}
		}
		return lab.ContainerdInstalled()
	}
	return usageError{fmt.Errorf("--runtime %q: want %s", runtime, strings.Join(lab.Runtimes, ", "))}
}

// faultHelp lists the faults --fault produces.
func faultHelp() string {
	var b strings.Builder
	b.WriteString("make the lab fail as users report it, by the real mechanism, and see pftap name it:")
	for _, f := range labrun.Faults {
		fmt.Fprintf(&b, "\n  %s: %s", f.Name, f.About)
	}
	return b.String()
}
