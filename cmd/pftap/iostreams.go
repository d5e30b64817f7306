package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// IOStreams are the standard streams a command writes to. Commands write
// only here, so tests can give them buffers.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// OutTTY is true when Out is a terminal: colour and human layout.
	OutTTY bool
	// ErrTTY is true when ErrOut is a terminal: a progress line there.
	ErrTTY bool
	// plugin: started by kubectl as kubectl-pftap (usage says
	// `kubectl pftap`).
	plugin bool
}

func systemIO() *IOStreams {
	return &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, OutTTY: isTerminal(os.Stdout) && os.Getenv("NO_COLOR") == "",
		ErrTTY: isTerminal(os.Stderr)}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// stopSignals end every command the same way: Ctrl-C, SIGTERM, and
// SIGHUP (a closed terminal or SSH session), each with its clean-up.
// SIGPIPE is ignored (see main): the reader of its output gone, as with
// `| head`, would otherwise kill pftap before it removes what it made.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

// signalContext is a context cancelled by one of stopSignals, or, when a
// test gave one, by stop.
func signalContext(stop <-chan struct{}) (context.Context, context.CancelFunc) {
	if stop != nil {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		return ctx, cancel
	}
	return signal.NotifyContext(context.Background(), stopSignals...)
}

// stopOrSignal returns stop when a test gave one, or a channel closed on
// one of stopSignals; cancel releases the signal handler.
func stopOrSignal(stop <-chan struct{}) (<-chan struct{}, func()) {
	ctx, cancel := signalContext(stop)
	return ctx.Done(), cancel
}
