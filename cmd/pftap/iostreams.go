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
}

func systemIO() *IOStreams {
	return &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, OutTTY: isTerminal(os.Stdout) && os.Getenv("NO_COLOR") == ""}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// stopOrSignal returns stop when a test gave one, or a channel closed on
// Ctrl-C or SIGTERM; cancel releases the signal handler.
func stopOrSignal(stop <-chan struct{}) (<-chan struct{}, func()) {
	if stop != nil {
		return stop, func() {}
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return ctx.Done(), cancel
}
