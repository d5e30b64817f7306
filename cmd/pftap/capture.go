package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pftap/pftap/capture"
	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/decode/packet"
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
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
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
	src, err := capture.Open(capture.Options{Netns: netns, Interface: opts.Interface, Filter: opts.Filter, BufferMiB: opts.BufferMiB})
	if err != nil {
		return err
	}
	defer src.Close()

	var w *capture.Writer
	toStdout := opts.Write == "-"
	switch {
	case toStdout:
		w = capture.NewWriter(opts.IO.Out, sessionComment(netns, opts))
	case opts.Write != "":
		if w, err = capture.Create(opts.Write, sessionComment(netns, opts)); err != nil {
			return err
		}
	}
	if w != nil {
		defer w.Close()
	}
	legs := map[int]int{}
	where := "the current namespace"
	if netns != "" {
		where = "netns " + netns
	}

	var events []*decode.Event
	dec := decode.NewDecoder(decode.Options{Verbosity: 1}, func(e *decode.Event) { events = append(events, e) })
	live := w == nil
	filterText := opts.Filter
	if filterText == "" {
		filterText = "all packets"
	}
	fmt.Fprintf(opts.IO.ErrOut, "pftap: capturing on %s in %s (%s)\n", opts.Interface, where, filterText)
	if opts.Ready != nil {
		opts.Ready()
	}
	start := time.Now()
	var n int
	var lastDrops uint64
	lastCheck := time.Now()
	var p packet.Packet
	for ctx.Err() == nil && (opts.Count == 0 || n < opts.Count) {
		data, ci, err := src.ReadPacket()
		if errors.Is(err, capture.ErrTimeout) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading packets: %w", err)
		}
		n++
		ifname := src.InterfaceName(ci.InterfaceIndex)
		events = events[:0]
		isTCP := packet.Decode(packet.LinkEthernet, data, &p) == nil
		if isTCP {
			p.Time, p.Interface = ci.Timestamp, ci.InterfaceIndex
			dec.Add(&p)
		}
		if w != nil {
			leg, ok := legs[ci.InterfaceIndex]
			if !ok {
				leg, err = w.AddLeg(capture.Leg{Name: fmt.Sprintf("%s (%s)", ifname, where), Description: fmt.Sprintf("%s in %s, captured by pftap", ifname, where)})
				if err != nil {
					return err
				}
				legs[ci.InterfaceIndex] = leg
			}
			if err := w.WritePacket(leg, ci.Timestamp, data, ci.Length, commentOf(events)); err != nil {
				return fmt.Errorf("writing %s: %w", opts.Write, err)
			}
		}
		if live {
			printPacket(opts.IO, ci.Timestamp, ifname, isTCP, &p, len(data), events)
		}
		if time.Since(lastCheck) > time.Second {
			lastCheck = time.Now()
			if st, err := src.Stats(); err == nil && st.Drops > 0 {
				lastDrops += st.Drops
				fmt.Fprintf(opts.IO.ErrOut, "pftap: WARNING: the kernel dropped %d packets (ring full): the capture has gaps; raise --buffer\n", st.Drops)
			}
		}
	}
	st, _ := src.Stats()
	drops := lastDrops + st.Drops
	fmt.Fprintf(opts.IO.ErrOut, "pftap: %d packets captured on %s in %s in %.1fs, %d dropped by the kernel\n",
		n, opts.Interface, where, time.Since(start).Seconds(), drops)
	if drops > 0 {
		return fmt.Errorf("the kernel dropped %d packets: the capture has gaps (raise --buffer)", drops)
	}
	return nil
}

func sessionComment(netns string, opts *CaptureOptions) string {
	return fmt.Sprintf("pftap capture: netns=%q interface=%q filter=%q started=%s", netns, opts.Interface, opts.Filter, time.Now().UTC().Format(time.RFC3339Nano))
}

func commentOf(evs []*decode.Event) string {
	var parts []string
	for _, e := range evs {
		if e.Kind == decode.KindConn || e.Kind == decode.KindClose {
			continue
		}
		parts = append(parts, e.Text)
	}
	return strings.Join(parts, " | ")
}

func printPacket(ios *IOStreams, ts time.Time, ifname string, isTCP bool, p *packet.Packet, size int, evs []*decode.Event) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-5s ", ts.Format("15:04:05.000000"), ifname)
	if isTCP {
		fmt.Fprintf(&b, "%s > %s [%s] seq=%d len=%d", p.Src, p.Dst, p.Flags, p.Seq, len(p.Payload))
	} else {
		fmt.Fprintf(&b, "non-TCP frame, %d bytes", size)
	}
	b.WriteByte('\n')
	for _, e := range evs {
		if e.Kind == decode.KindConn || e.Kind == decode.KindClose {
			continue
		}
		fmt.Fprintf(&b, "        %s\n", e.Text)
	}
	fmt.Fprint(ios.Out, b.String())
}
