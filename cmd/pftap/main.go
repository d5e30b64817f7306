package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// A closed output (pftap lab | head) makes writes fail instead of
	// killing pftap before it removes the lab it made.
	signal.Ignore(syscall.SIGPIPE)
	ios := systemIO()
	ios.plugin = asPlugin(os.Args[0])
	os.Exit(run(os.Args[1:], ios))
}
