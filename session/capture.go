package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pftap/pftap/capture"
	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/decode/packet"
	"github.com/pftap/pftap/leg"
)

// CaptureOptions say what Capture captures, and where it goes.
type CaptureOptions struct {
	// Netns, Interface, Filter and BufferMiB are capture.Options'.
	Netns, Interface, Filter string
	BufferMiB                int
	// Write is a file to write the capture to as pcapng, one interface
	// per interface seen, each packet with its decoded summaries as its
	// comment, credentials hidden (as in every recording); Out, when set
	// instead, receives the same (a pipe);
	// Comment heads it.
	Write   string
	Out     io.Writer
	Comment string
	// Count stops the capture after this many packets (0: none).
	Count int
	// Packet, when set, gets every packet as it is captured; the
	// CapturedPacket is only valid during the call.
	Packet func(*CapturedPacket)
	// Drops is told, at most once a second, of packets the kernel dropped
	// (its ring was full).
	Drops func(n uint64)
}

// CapturedPacket is one packet of a Capture, decoded.
type CapturedPacket struct {
	Time      time.Time
	Interface string
	// TCP says P holds the packet's headers (it is a TCP packet).
	TCP    bool
	P      *packet.Packet
	Size   int
	Events []*decode.Event
}

// CaptureResult is what a Capture saw.
type CaptureResult struct {
	Packets int
	Took    time.Duration
	Drops   uint64
}

// Capture is `pftap capture`: one interface (or every one) of a network
// namespace captured until ctx ends or Count packets, each packet decoded
// as it comes (its events become its comment in the pcapng). ready, when
// set, runs once the capture is open.
func Capture(ctx context.Context, o CaptureOptions, ready func()) (CaptureResult, error) {
	src, err := capture.Open(capture.Options{Netns: o.Netns, Interface: o.Interface, Filter: o.Filter, BufferMiB: o.BufferMiB})
	if err != nil {
		return CaptureResult{}, err
	}
	defer src.Close()
	var w *capture.Writer
	switch {
	case o.Write != "":
		if w, err = capture.Create(o.Write, o.Comment); err != nil {
			return CaptureResult{}, err
		}
	case o.Out != nil:
		w = capture.NewWriter(o.Out, o.Comment)
	}
	if w != nil {
		defer w.Close()
	}
	where := "the current namespace"
	if o.Netns != "" {
		where = "netns " + o.Netns
	}
	legs := map[int]int{}
	var events []*decode.Event
	dec := decode.NewDecoder(decode.Options{Verbosity: 1}, func(e *decode.Event) { events = append(events, e) })
	if ready != nil {
		ready()
	}
	start := time.Now()
	var res CaptureResult
	lastCheck := time.Now()
	var cp CapturedPacket
	var p packet.Packet
	var frame []byte
	for ctx.Err() == nil && (o.Count == 0 || res.Packets < o.Count) {
		data, ci, err := src.ReadPacket()
		if errors.Is(err, capture.ErrTimeout) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("reading packets: %w", err)
		}
		res.Packets++
		ifname := src.InterfaceName(ci.InterfaceIndex)
		events = events[:0]
		isTCP := packet.Decode(packet.LinkEthernet, data, &p) == nil
		if isTCP {
			p.Time, p.Interface = ci.Timestamp, ci.InterfaceIndex
			dec.Add(&p)
		}
		if w != nil {
			idx, ok := legs[ci.InterfaceIndex]
			if !ok {
				idx, err = w.AddLeg(capture.Leg{Leg: leg.Leg{Name: fmt.Sprintf("%s (%s)", ifname, where), Description: fmt.Sprintf("%s in %s, captured by pftap", ifname, where)}})
				if err != nil {
					return res, err
				}
				legs[ci.InterfaceIndex] = idx
			}
			// Credentials hidden, as the Recorder hides them in every
			// recording (a copy: the packet is still the decoder's).
			frame = append(frame[:0], data...)
			capture.RedactFrame(frame)
			if err := w.WritePacket(idx, ci.Timestamp, frame, ci.Length, commentOf(events)); err != nil {
				return res, fmt.Errorf("writing the capture: %w", err)
			}
		}
		if o.Packet != nil {
			cp = CapturedPacket{Time: ci.Timestamp, Interface: ifname, TCP: isTCP, P: &p, Size: len(data), Events: events}
			o.Packet(&cp)
		}
		if time.Since(lastCheck) > time.Second {
			lastCheck = time.Now()
			if st, err := src.Stats(); err == nil && st.Drops > 0 {
				res.Drops += st.Drops
				if o.Drops != nil {
					o.Drops(st.Drops)
				}
			}
		}
	}
	st, _ := src.Stats()
	res.Drops += st.Drops
	res.Took = time.Since(start)
	return res, nil
}

// commentOf is a packet's comment: the summaries of what it completed,
// joined as the Recorder joins them.
func commentOf(evs []*decode.Event) string {
	var parts []string
	for _, e := range evs {
		if e.Kind == decode.KindConn || e.Kind == decode.KindClose {
			continue
		}
		parts = append(parts, e.Text)
	}
	return strings.Join(parts, "; ")
}
