package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/report"
	"github.com/pftap/pftap/session"

	"github.com/spf13/cobra"

	"github.com/pftap/pftap/replay"
)

// ReplayOptions are the inputs of `pftap replay`.
type ReplayOptions struct {
	IO         *IOStreams
	File       string
	JSON       bool
	HTML       string
	Verbosity  int
	NoColor    bool
	PerRequest bool
	Serve      bool
	Kubeconfig string
	Address    string
	Strict     bool
	Timing     bool
	// Stop, when set, replaces waiting for a signal (tests).
	Stop <-chan struct{}
	// Ready, when set, receives the server once it listens (tests).
	Ready func(*replay.APIServer)
}

func newReplayCmd(ios *IOStreams) *cobra.Command {
	opts := &ReplayOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "replay FILE.pcapng",
		Short: "Render a recorded session as pftap lab did, or serve it as a fake apiserver",
		Long: `Replay a recording: one from pftap lab -w, or any pcap/pcapng of port-forward
traffic.

With no flags, pftap replay renders the session's timeline exactly as
pftap lab rendered it live: the same header, legs, per-hop latencies, witness
and summary (--json and --html as for pftap lab).

With --serve, it becomes the recorded apiserver: kubectl (or any client) can
port-forward to the recorded pod, and every request it opens is answered with
the recorded server side (SYN_REPLY, DATA, FIN, RST, the error stream's text).
What the client sends is compared with what the recorded client sent;
differences are printed as they happen, with a diff. Stop it with Ctrl-C; it
exits non-zero when the client deviated from the recording.`,
		Example: `  pftap replay session.pcapng
  pftap replay --json session.pcapng | jq 'select(.kind=="request")'
  pftap replay --serve --kubeconfig /tmp/replay.kubeconfig session.pcapng &
  KUBECONFIG=/tmp/replay.kubeconfig kubectl port-forward pod/nginx 8080:80`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("replay needs exactly one recording")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.File = args[0]
			if opts.Serve {
				if opts.JSON || opts.HTML != "" {
					return usageError{errors.New("--serve does not render: drop --json and --html")}
				}
				return replayServe(opts)
			}
			fl := cmd.Flags()
			if fl.Changed("kubeconfig") || fl.Changed("address") || fl.Changed("strict") || fl.Changed("timing") {
				return usageError{errors.New("--kubeconfig, --address, --strict and --timing go with --serve")}
			}
			return replayRender(opts)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.PerRequest, "per-request", false, "list every request's per-hop latency (from 10 requests on they are summed up: p50, p90, p99, max)")
	f.BoolVar(&opts.JSON, "json", false, "print one JSON object per line (see docs/json.md)")
	f.StringVar(&opts.HTML, "html", "", "also write a sequence diagram of the legs to this HTML file")
	f.CountVarP(&opts.Verbosity, "verbose", "v", "more detail: -v adds every SPDY frame, -vv WebSocket frames and TCP segments")
	f.BoolVar(&opts.NoColor, "no-color", false, "no colours even on a terminal")
	f.BoolVar(&opts.Serve, "serve", false, "serve the recording as a fake apiserver until Ctrl-C")
	f.StringVar(&opts.Kubeconfig, "kubeconfig", "", "with --serve: write the kubeconfig for it here (default: a temporary file, printed)")
	f.StringVar(&opts.Address, "address", "127.0.0.1:0", "with --serve: address to listen on")
	f.BoolVar(&opts.Strict, "strict", false, "with --serve: compare request IDs and DATA frames byte for byte")
	f.BoolVar(&opts.Timing, "timing", false, "with --serve: answer with the recorded gaps instead of at once")
	return cmd
}

// replayRender renders a recording as `pftap lab` renders a live session.
func replayRender(opts *ReplayOptions) error {
	f, err := session.OpenFile(opts.File)
	if err != nil {
		return err
	}
	defer f.Close()
	v := &report.View{Info: f.Start.Description(), Results: f.Start.RequestResults(), Drops: f.Start.Drops}
	for _, l := range f.Legs {
		v.Legs = append(v.Legs, l.Name)
		v.LegIDs = append(v.LegIDs, l.ID)
	}
	if !f.IsLab {
		v.Info.Header = genericHeader(opts.File)
	}
	// A recording written as the session went has what is known only at
	// the end in its legs' statistics, read with the last packet.
	v.After = func() {
		if end, ok := f.End(); ok {
			v.Results, v.Info.AppLog, v.Info.ClientLog, v.Info.Client, v.Drops = end.RequestResults(), end.Description().AppLog, end.Description().ClientLog, end.Description().Client, end.Drops
		}
	}
	v.Decode = func(emit func(*decode.Event)) (session.Decoded, error) { return f.Decode(opts.Verbosity, emit) }
	return report.Session(report.Options{Out: opts.IO.Out, Color: opts.IO.OutTTY && !opts.NoColor, JSON: opts.JSON, HTML: opts.HTML,
		Title: "pftap replay " + opts.File, PerRequest: opts.PerRequest}, v)
}

// genericHeader heads a recording that pftap lab did not make.
func genericHeader(file string) string {
	s, err := replay.Open(file)
	if err != nil {
		return fmt.Sprintf("pftap replay: %s\n", file)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "pftap replay: %s\n  %s\n", file, s.Describe())
	for _, l := range s.Legs {
		if l.Name != "" {
			fmt.Fprintf(&b, "  %-28s %s\n", l.Name, l.Description)
		}
	}
	return b.String()
}

// replayServe runs the recorded apiserver until a signal.
func replayServe(opts *ReplayOptions) error {
	s, err := replay.Open(opts.File)
	if err != nil {
		return fmt.Errorf("%s: %w", opts.File, err)
	}
	ns, pod, ok := s.Pod()
	if !ok {
		return fmt.Errorf("%s: no port-forward to a pod through an apiserver in this recording (%s)", opts.File, s.Describe())
	}
	ropts := []replay.Option{replay.WithAddress(opts.Address), replay.WithReporter(func(m replay.Mismatch) {
		fmt.Fprintf(opts.IO.ErrOut, "pftap: mismatch: %v\n", m)
	})}
	if opts.Kubeconfig != "" {
		ropts = append(ropts, replay.WithKubeconfig(opts.Kubeconfig))
	}
	if opts.Strict {
		ropts = append(ropts, replay.WithMode(replay.Strict))
	}
	if opts.Timing {
		ropts = append(ropts, replay.WithRecordedTiming())
	}
	a, err := replay.StartAPIServer(s, ropts...)
	if err != nil {
		return err
	}
	reqs := s.Requests()
	port := 80
	if len(reqs) > 0 {
		port = reqs[0].Port
	}
	out := opts.IO.Out
	fmt.Fprintf(out, "pftap replay: the recorded apiserver of %s\n  %s\n", opts.File, s.Describe())
	fmt.Fprintf(out, "  serving at %s, kubeconfig %s\n\n", a.URL, a.Kubeconfig)
	fmt.Fprintf(out, "  KUBECONFIG=%s kubectl -n %s port-forward pod/%s 8080:%d\n\n", a.Kubeconfig, ns, pod, port)
	fmt.Fprintf(out, "Each port-forward request is answered as recorded; Ctrl-C to stop.\n")
	if opts.Ready != nil {
		opts.Ready(a)
	}
	stop, cancel := stopOrSignal(opts.Stop)
	defer cancel()
	<-stop
	a.Close()
	ms := a.Mismatches()
	fmt.Fprintf(out, "\nplayed %d of %d recorded requests; %d mismatches\n", a.Played(), len(reqs), len(ms))
	if len(ms) > 0 {
		return fmt.Errorf("the client deviated from the recording: %d mismatches (first: %s)", len(ms), strings.SplitN(ms[0].Error(), "\n", 2)[0])
	}
	return nil
}
