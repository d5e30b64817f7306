package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pftap/pftap/capture"
	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/session"
)

// CaptureOptions are the inputs of `pftap capture`.
type CaptureOptions struct {
	IO        *IOStreams
	Netns     string
	PodIP     string
	Interface string
	Filter    string
	Write     string
	Duration  time.Duration
	Count     int
	BufferMiB int
	NoColor   bool
	// Ready, when set, is called once the socket is open (tests).
	Ready func()
}

func newCaptureCmd(ios *IOStreams, runF func(*CaptureOptions) error) *cobra.Command {
	opts := &CaptureOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "capture [flags] [FILTER]",
		Short: "Capture packets inside any network namespace (tcpdump that can enter a pod)",
		Long: `Capture packets on an interface of any network namespace, such as a pod's lo,
which tcpdump on the node cannot see without nsenter.

The namespace is given by name (/run/netns/NAME), path, process (pid:N), or
found from a pod's IP (--pod-ip). FILTER is a small tcpdump-like expression
(tcp, udp, ip, ip6, [src|dst] host ADDR, [tcp|udp] [src|dst] port N, and, or,
not, parentheses), compiled to a kernel BPF program. On lo the kernel hands
every packet to a capture twice; pftap keeps one, as tcpdump does.

Without -w, pftap prints a line per packet and what it decodes (SPDY frames,
port-forward streams). With -w it writes pcapng (- for standard output, to
pipe into "wireshark -k -i -"), with decoded summaries as packet comments.

Capturing needs CAP_NET_RAW, and entering another namespace CAP_SYS_ADMIN:
run as root.`,
		Example: `  pftap capture --netns pftap-1-pod -i lo tcp port 80
  pftap capture --pod-ip 10.244.1.7 -i lo -w pod-lo.pcapng
  pftap capture -i lo -w - 'tcp port 10250 or tcp port 6443' | wireshark -k -i -`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Filter = strings.Join(args, " ")
			if opts.Netns != "" && opts.PodIP != "" {
				return usageError{errors.New("--netns and --pod-ip name the namespace twice: give one")}
			}
			if opts.PodIP != "" {
				if _, err := netip.ParseAddr(opts.PodIP); err != nil {
					return usageError{fmt.Errorf("--pod-ip %q is not an IP address", opts.PodIP)}
				}
			}
			if opts.Count < 0 || opts.Duration < 0 {
				return usageError{errors.New("--count and --duration must not be negative")}
			}
			if runF != nil {
				return runF(opts)
			}
			return captureRun(opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Netns, "netns", "", "network namespace: NAME (under /run/netns), a path, or pid:N")
	f.StringVar(&opts.PodIP, "pod-ip", "", "find the namespace whose interface has this IP")
	f.StringVarP(&opts.Interface, "interface", "i", "any", "interface in that namespace, or any")
	f.StringVarP(&opts.Write, "write", "w", "", "write pcapng to FILE (- for standard output)")
	f.DurationVar(&opts.Duration, "duration", 0, "stop after this long (default: until Ctrl-C)")
	f.IntVarP(&opts.Count, "count", "c", 0, "stop after this many packets")
	f.IntVar(&opts.BufferMiB, "buffer", 64, "kernel ring size in MiB")
	f.BoolVar(&opts.NoColor, "no-color", false, "no colours even on a terminal")
	return cmd
}

func captureRun(opts *CaptureOptions) error {
	ctx, stop := signalContext(nil)
	defer stop()
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
		defer cancel()
	}
	netns := opts.Netns
	if opts.PodIP != "" {
		m, err := capture.FindNetnsByIP(netip.MustParseAddr(opts.PodIP))
		if err != nil {
			return err
		}
		netns = m.Ref
		fmt.Fprintf(opts.IO.ErrOut, "pftap: capturing in the %s\n", m.How)
	}
	o := session.CaptureOptions{Netns: netns, Interface: opts.Interface, Filter: opts.Filter, BufferMiB: opts.BufferMiB, Count: opts.Count,
		Comment: fmt.Sprintf("pftap capture: netns=%q interface=%q filter=%q started=%s", netns, opts.Interface, opts.Filter, time.Now().UTC().Format(time.RFC3339Nano)),
		Drops: func(n uint64) {
			fmt.Fprintf(opts.IO.ErrOut, "pftap: WARNING: the kernel dropped %d packets (ring full): the capture has gaps; raise --buffer\n", n)
		}}
	switch opts.Write {
	case "":
		o.Packet = func(p *session.CapturedPacket) { printPacket(opts.IO, p) }
	case "-":
		o.Out = opts.IO.Out
	default:
		o.Write = opts.Write
	}
	where := "the current namespace"
	if netns != "" {
		where = "netns " + netns
	}
	filterText := opts.Filter
	if filterText == "" {
		filterText = "all packets"
	}
	res, err := session.Capture(ctx, o, func() {
		fmt.Fprintf(opts.IO.ErrOut, "pftap: capturing on %s in %s (%s)\n", opts.Interface, where, filterText)
		if opts.Ready != nil {
			opts.Ready()
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.ErrOut, "pftap: %d packets captured on %s in %s in %.1fs, %d dropped by the kernel\n",
		res.Packets, opts.Interface, where, res.Took.Seconds(), res.Drops)
	if res.Drops > 0 {
		return fmt.Errorf("the kernel dropped %d packets: the capture has gaps (raise --buffer)", res.Drops)
	}
	return nil
}

func printPacket(ios *IOStreams, cp *session.CapturedPacket) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-5s ", cp.Time.Format("15:04:05.000000"), cp.Interface)
	if p := cp.P; cp.TCP {
		fmt.Fprintf(&b, "%s > %s [%s] seq=%d len=%d", p.Src, p.Dst, p.Flags, p.Seq, len(p.Payload))
	} else {
		fmt.Fprintf(&b, "non-TCP frame, %d bytes", cp.Size)
	}
	b.WriteByte('\n')
	for _, e := range cp.Events {
		if e.Kind == decode.KindConn || e.Kind == decode.KindClose {
			continue
		}
		fmt.Fprintf(&b, "        %s\n", e.Text)
	}
	fmt.Fprint(ios.Out, b.String())
}
