package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func main() {
	// A closed output (pftap lab | head) makes writes fail instead of
	// killing pftap before it removes the lab it made.
	signal.Ignore(syscall.SIGPIPE)
	ios := systemIO()
	ios.plugin = asPlugin(os.Args[0])
	stop := profile(os.Getenv("PFTAP_CPUPROFILE"))
	code := run(os.Args[1:], ios)
	stop()
	os.Exit(code)
}

// profile writes a CPU profile of the whole run to path, when set (for
// the benchmarks: PFTAP_CPUPROFILE=cpu.prof pftap trace ...; go tool
// pprof cpu.prof).
func profile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pftap: PFTAP_CPUPROFILE: %v\n", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
