package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/internal/termout"
	"github.com/pftap/pftap/lab"
	"github.com/pftap/pftap/labrun"
	"github.com/pftap/pftap/report"
	"github.com/pftap/pftap/session"
)

// LabRunOptions are the inputs of `pftap lab`, the main job.
type LabRunOptions struct {
	IO          *IOStreams
	Runtime     string
	App         string
	Client      string
	SPDY        bool
	NoWebSocket bool
	era         eraFlags
	Requests    []string
	Concurrency int
	// Repeat sends each request this many times (validation expands it).
	Repeat int
	// HeaderTimeout bounds the wait for a response's header; a body is
	// never timed out (it can be studied as long as it takes).
	HeaderTimeout time.Duration
	// RemotePort is the pod port to forward to; 0: the app's.
	RemotePort int
	Write      string
	HTML       string
	JSON       bool
	Verbosity  int
	NoColor    bool
	PerRequest bool
	// Fault is --fault: one of labrun.Faults.
	Fault string
	// Kubectl is the kubectl binary --client kubectl runs ("": $PFTAP_KUBECTL,
	// else kubectl on PATH, else /usr/bin/kubectl).
	Kubectl string
	// taps leaves taps out, to measure what they cost (the zero value:
	// every tap, as users run it).
	taps labrun.Taps
}

func labRun(opts *LabRunOptions) error {
	_, err := runLab(opts)
	return err
}

// progressEvery is how often the status line is drawn again.
const progressEvery = 250 * time.Millisecond

// sessionOptions are the session's options from the command's.
func (opts *LabRunOptions) sessionOptions() (labrun.LabOptions, error) {
	o := labrun.LabOptions{Runtime: opts.Runtime, App: opts.App, Client: session.Client(opts.Client), SPDY: opts.SPDY,
		NoWebSocket: opts.NoWebSocket, Concurrency: opts.Concurrency, HeaderTimeout: opts.HeaderTimeout,
		RemotePort: opts.RemotePort, Write: opts.Write, Verbosity: opts.Verbosity, Taps: opts.taps,
		Kubernetes: opts.era.apiserver, Kubelet: opts.era.node, KubeletGateOff: opts.era.gateOff, StaleDeclaredFeatures: opts.era.stale, APIServer: opts.era.binary, KubeletBinary: opts.era.kubeletBinary, Containerd: opts.era.containerd, Fault: opts.Fault, Kubectl: opts.Kubectl}
	for _, r := range opts.Requests {
		req, err := session.ParseRequest(r)
		if err != nil {
			return o, fmt.Errorf("--request %q: %w", r, err)
		}
		o.Requests = append(o.Requests, req)
	}
	return o, nil
}

// runLab is `pftap lab`: the session and its rendering. The frames are
// decoded as they come and the timeline is printed during the run; with -w
// every frame is also written to the file as the session goes, and what is
// known only at the end once it has ended, whether it succeeded or not.
func runLab(opts *LabRunOptions) (labrun.LabResult, error) {
	o, err := opts.sessionOptions()
	if err != nil {
		return labrun.LabResult{}, err
	}
	if done, _ := lab.Clean(); len(done) > 0 {
		fmt.Fprintf(opts.IO.ErrOut, "pftap: cleaned up after a lab that died: %s\n", strings.Join(done, ", "))
	}
	ctx, stop := signalContext(nil)
	defer stop()
	s, err := labrun.StartLab(ctx, o)
	if err != nil {
		return labrun.LabResult{}, err
	}
	if !s.Decodes() {
		// Only measuring what the taps cost: nothing to render.
		res, err := s.Run()
		s.Close(nil)
		return res, err
	}
	v := &report.View{Info: s.Description(), FailOnResults: true}
	for _, l := range s.Legs() {
		v.Legs = append(v.Legs, l.Name)
		v.LegIDs = append(v.LegIDs, l.ID)
	}
	v.Drops = make([]uint64, len(v.Legs))
	v.Decode = func(emit func(*decode.Event)) (session.Decoded, error) { return s.Events(emit), nil }
	// The session's result is known once Run has returned, after its
	// last event.
	var final *labrun.LabResult
	ended := make(chan struct{})
	v.After = func() {
		<-ended
		if final == nil {
			v.FailOnResults = false // the session failed: its error is the one to say
			return
		}
		v.Info, v.Results = final.Description, final.Results
		copy(v.Drops, final.Drops)
	}
	ropts := report.Options{Out: opts.IO.Out, Color: opts.IO.OutTTY && !opts.NoColor, JSON: opts.JSON, HTML: opts.HTML, Title: "pftap lab", PerRequest: opts.PerRequest}
	// A single updating status line on a terminal: bytes and rate per
	// leg, elapsed, drops; nothing of it when piped or with --json.
	var status *termout.StatusLine
	if opts.IO.ErrTTY && !opts.JSON {
		var names []string
		for _, l := range s.Legs() {
			names = append(names, string(l.ID))
		}
		var rates termout.Rates
		status = termout.NewStatusLine(opts.IO.ErrOut, opts.IO.Out, opts.IO.OutTTY, progressEvery, func(el time.Duration) string {
			p := s.Progress()
			return rates.Line(el, names, p.Bytes, int64(p.Drops))
		})
		ropts.Out = status
	}
	rendered := make(chan error, 1)
	go func() { rendered <- report.Session(ropts, v) }()
	res, err := s.Run()
	if status != nil {
		status.Stop()
	}
	if err == nil {
		final = &res
	}
	close(ended)
	renderErr := <-rendered
	// What was recorded is kept, also when the session failed.
	rec, writeErr := s.Close(func(queued int64) {
		fmt.Fprintf(opts.IO.ErrOut, "pftap lab: writing the last %s of the recording to %s\n", termout.Size(queued), opts.Write)
	})
	if rec.Path != "" {
		fmt.Fprintf(opts.IO.ErrOut, "pftap lab: wrote %s (%d packets, %s)\n", rec.Path, rec.Packets, termout.Size(rec.Bytes))
	}
	switch {
	case err != nil:
		return res, err
	case writeErr != nil:
		return res, writeErr
	}
	return res, renderErr
}
