package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes, decided here only.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed: bad input, missing privilege...
	exitUsage = 2 // the command line itself is wrong
)

// usageError marks errors in how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// silentError is returned when the command already printed what went wrong
// and only the exit status remains to be set.
type silentError struct{ code int }

func (e silentError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func newRootCmd(io *IOStreams) *cobra.Command {
	root := &cobra.Command{
		Use:   "pftap",
		Short: "See every hop of kubectl port-forward",
		Long: `pftap is a protocol inspector and packet-level debugger for kubectl port-forward.

It decodes what crosses each hop of the forward chain (the HTTP upgrade, SPDY/3.1
frames, the port-forward stream protocol, SPDY tunnelled in WebSocket, and the TCP
payload on the pod's loopback) and prints it as a timeline.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(io.Out)
	root.SetErr(io.ErrOut)
	root.SetIn(io.In)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{plainFlagError(err)}
	})
	root.AddCommand(newVersionCmd(io))
	root.AddCommand(newDecodeCmd(io, nil))
	root.AddCommand(newCaptureCmd(io, nil))
	root.AddCommand(newLabCmd(io))
	root.AddCommand(newReplayCmd(io))
	root.AddCommand(newTraceCmd(io, nil))
	root.AddCommand(newAgentCmd(io, nil))
	root.Version = versionString()
	root.SetVersionTemplate("{{.Version}}\n")
	if io.plugin {
		pluginNames(root)
	}
	return root
}

// flagParseError is pflag's message for a value it could not parse, which
// ends in the Go parser's own words (strconv.ParseInt: parsing "x": ...).
var flagParseError = regexp.MustCompile(`^invalid argument "(.*)" for "(.*)" flag: (strconv\.Parse\w+: parsing ".*": )?(.*)$`)

// plainFlagError says what was wrong with a flag's value in a user's
// words.
func plainFlagError(err error) error {
	m := flagParseError.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	why := m[4]
	switch {
	case m[3] != "" && why == "invalid syntax":
		why = "not a number"
	case m[3] != "" && why == "value out of range":
		why = "out of range"
	case strings.HasPrefix(why, "time: "):
		why = "not a duration like 500ms, 30s or 2m"
	}
	return fmt.Errorf("%s %q: %s", m[2], m[1], why)
}

// run executes the command line and turns its outcome into an exit code.
func run(args []string, io *IOStreams) int {
	root := newRootCmd(io)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var se silentError
	if errors.As(err, &se) {
		return se.code
	}
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "accepts ") || strings.HasPrefix(err.Error(), "requires ") {
		// One line, and where the usage is, as kubectl does.
		fmt.Fprintf(io.ErrOut, "pftap: %v\n", err)
		if cmd != nil {
			fmt.Fprintf(io.ErrOut, "See '%s --help' for usage.\n", cmd.CommandPath())
		}
		return exitUsage
	}
	fmt.Fprintf(io.ErrOut, "pftap: %v\n", err)
	return exitError
}
