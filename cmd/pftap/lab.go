package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/labrun"

	"github.com/pftap/pftap/session"

	"github.com/spf13/cobra"

	"github.com/pftap/pftap/lab"
)

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
		if opts.era.kubernetes != "" || opts.era.kubelet != "" || opts.era.binary != "" || opts.era.kubeletBinary != "" {
			return usageError{fmt.Errorf("--fault %s sets the versions itself (a %s apiserver, a %s kubelet): leave out --kubernetes, --kubelet, --apiserver and --kubelet-binary", opts.Fault, fault.Kubernetes, fault.Kubelet)}
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
