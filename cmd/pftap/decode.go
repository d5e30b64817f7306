package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/report"
	"github.com/pftap/pftap/timeline"
)

// DecodeOptions are the inputs of `pftap decode`.
type DecodeOptions struct {
	IO          *IOStreams
	File        string
	Verbosity   int
	JSON        bool
	ShowSecrets bool
	NoColor     bool
	// MaskTimes replaces times with "+T" (for golden tests).
	MaskTimes bool
	// HTML is a file for the sequence diagram.
	HTML string
	// PerRequest lists every request's hops (timeline.TextWriter).
	PerRequest bool
	// Stop, when set (tests), stands for a stop signal.
	Stop <-chan struct{}
}

func newDecodeCmd(ios *IOStreams, runF func(*DecodeOptions) error) *cobra.Command {
	opts := &DecodeOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "decode FILE.pcap|FILE.pcapng|-",
		Short: "Decode the port-forward sessions in a packet capture",
		Long: `Decode a pcap or pcapng capture of kubectl port-forward traffic.

pftap reassembles every TCP connection, finds the HTTP upgrade (SPDY/3.1 or
WebSocket), decodes the SPDY frames and the port-forward streams inside, and
prints one line per port-forward event, then a summary. Captures of the
apiserver, the kubelet (:10250, when not TLS), the runtime's streaming server
(node lo) and the pod's lo all decode; TLS connections show record sizes only.

Authorization, Cookie and bearer tokens are redacted unless --show-secrets.`,
		Example: `  pftap decode session.pcapng
  pftap decode -v session.pcapng          # every SPDY frame too
  pftap decode -vv session.pcapng         # WebSocket frames and TCP segments
  pftap decode --json session.pcapng | jq 'select(.kind=="request")'
  tcpdump -i lo -w - port 10250 | pftap decode -`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{errors.New("decode needs exactly one capture file (or - for standard input)")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.File = args[0]
			if runF != nil {
				return runF(opts)
			}
			return decodeRun(opts)
		},
	}
	cmd.Flags().CountVarP(&opts.Verbosity, "verbose", "v", "more detail: -v adds every SPDY frame, -vv WebSocket frames and TCP segments")
	cmd.Flags().BoolVar(&opts.PerRequest, "per-request", false, "list every request's per-hop latency (from 10 requests on they are summed up: p50, p90, p99, max)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON object per line (see docs/json.md)")
	cmd.Flags().BoolVar(&opts.ShowSecrets, "show-secrets", false, "do not redact Authorization, Cookie and bearer tokens")
	cmd.Flags().BoolVar(&opts.NoColor, "no-color", false, "no colours even on a terminal")
	cmd.Flags().StringVar(&opts.HTML, "html", "", "also write a sequence diagram of the legs to this HTML file")
	cmd.Flags().BoolVar(&opts.MaskTimes, "mask-times", false, "print +T instead of times (stable output for tests)")
	_ = cmd.Flags().MarkHidden("mask-times")
	return cmd
}

func decodeRun(opts *DecodeOptions) error {
	var in io.Reader
	out := opts.IO.Out
	var f *os.File
	if opts.File != "-" {
		var err error
		if f, err = os.Open(opts.File); err != nil {
			return err
		}
		defer f.Close()
	}
	if st, err := f.Stat(); f == nil || err != nil || !st.Mode().IsRegular() {
		// A live stream (standard input, a pipe, a device): each event is
		// written as it comes, and a signal ends pftap as it would any
		// filter, even while it waits for bytes.
		in = opts.IO.In
		if f != nil {
			in = f
		}
	} else {
		// A regular file: the output is buffered (a write per event cost
		// more than decoding it), and a stop signal ends the reading, so
		// that what was decoded is still printed and summed up.
		stop, release := stopOrSignal(opts.Stop)
		defer release()
		in = stopReader{f, stop, f}
		bw := bufio.NewWriterSize(out, 64<<10)
		defer bw.Flush()
		out = bw
	}
	var sink timeline.Sink
	if opts.JSON {
		sink = timeline.NewJSONWriter(out)
	} else {
		tw := timeline.NewTextWriter(out, opts.IO.OutTTY && !opts.NoColor)
		tw.MaskTimes = opts.MaskTimes
		tw.PerRequest = opts.PerRequest
		tw.FitLegs = true
		sink = tw
	}
	corr := timeline.NewCorrelator()
	// Who made each 101 where the capture has the legs to tell, the
	// diagnosis, the hops.
	an := timeline.NewAnalysis(timeline.AnalysisOptions{KeepEvents: opts.HTML != ""})
	emit := func(e *decode.Event) {
		an.Note(e)
		sink.Event(e)
	}
	sum, err := decode.DecodeCapture(in, decode.Options{Verbosity: opts.Verbosity, ShowSecrets: opts.ShowSecrets, Chunks: corr.Chunk}, emit)
	if err == nil || sum.Packets > 0 {
		res := an.Result(timeline.Decoded{Summary: sum, Correlator: corr, Legs: len(sum.Legs)})
		sink.Hops(res.Hops)
		sink.Diagnoses(res.Findings)
		sink.Summary(res.Summary)
		if opts.HTML != "" {
			if herr := report.WriteHTMLFile(opts.HTML, timeline.HTMLPage{Title: "pftap decode " + opts.File}, res.Events, res.Hops); herr != nil && err == nil {
				err = herr
			}
		}
	}
	if bw, ok := out.(*bufio.Writer); ok {
		if ferr := bw.Flush(); ferr != nil && sink.Err() == nil && err == nil {
			return fmt.Errorf("writing output: %w", ferr)
		}
	}
	if werr := sink.Err(); werr != nil && err == nil {
		return fmt.Errorf("writing output: %w", werr)
	}
	if errors.Is(err, errInterrupted) {
		return fmt.Errorf("%s: interrupted after %d packets (what they held is above)", opts.File, sum.Packets)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", opts.File, err)
	}
	if sum.DecodeErrors > 0 {
		return fmt.Errorf("%s: %d decode errors; first: %s", opts.File, sum.DecodeErrors, sum.FirstError)
	}
	return nil
}

// errInterrupted ends the reading of a file at a stop signal.
var errInterrupted = errors.New("interrupted")

// stopReader reads r until stop is closed.
type stopReader struct {
	r    io.Reader
	stop <-chan struct{}
	f    *os.File
}

// Len is what is left of the file, as a bytes.Reader says it: the
// capture reader sizes its buffers by it.
func (s stopReader) Len() int {
	st, err := s.f.Stat()
	if err != nil {
		return 1 << 30
	}
	pos, err := s.f.Seek(0, io.SeekCurrent)
	if err != nil || !st.Mode().IsRegular() {
		return 1 << 30
	}
	return int(max(st.Size()-pos, 0))
}

func (s stopReader) Read(p []byte) (int, error) {
	select {
	case <-s.stop:
		return 0, errInterrupted
	default:
	}
	return s.r.Read(p)
}
