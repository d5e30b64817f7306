//go:build linux

package lab

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

// A containerd lab's pod runs the lab's image, whose one binary is the
// executable that built the lab (pftap, or a test binary): started with
// roleEnv set, it is the sandbox's pause process or the built-in app, and
// nothing else of it runs.
const (
	roleEnv   = "PFTAP_LAB_CONTAINER_ROLE"
	rolePause = "pause"
	roleApp   = "app"
	// appPortEnv is the port the app listens on (localhost, in the pod).
	appPortEnv = "PFTAP_LAB_APP_PORT"
)

func init() {
	switch os.Getenv(roleEnv) {
	case "":
		return
	case rolePause:
		// As the pause container does: hold the sandbox's namespaces
		// until the runtime stops it.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		os.Exit(0)
	case roleApp:
		os.Exit(runAppRole())
	default:
		fmt.Fprintf(os.Stderr, "%s=%q: want %s or %s\n", roleEnv, os.Getenv(roleEnv), rolePause, roleApp)
		os.Exit(2)
	}
}

// runAppRole serves the built-in app on localhost in the pod, logging each
// request as a JSON line on stdout (the container's log, which the lab
// reads back).
func runAppRole() int {
	port, err := strconv.Atoi(os.Getenv(appPortEnv))
	if err != nil || port < 1 || port > 65535 {
		fmt.Fprintf(os.Stderr, "%s=%q: want a port\n", appPortEnv, os.Getenv(appPortEnv))
		return 2
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	a := NewApp()
	enc := json.NewEncoder(os.Stdout)
	a.onRecord = func(r AppRequest) { enc.Encode(r) }
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		a.Close()
	}()
	if err := a.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
