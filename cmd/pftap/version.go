package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func versionString() string {
	v, rev := buildVersion()
	if version == "" && len(rev) >= 12 {
		v += " (" + rev[:12] + ")"
	}
	return fmt.Sprintf("pftap %s %s/%s %s", v, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// buildVersion is this build's version and VCS revision.
func buildVersion() (ver, rev string) {
	ver = version
	if bi, ok := debug.ReadBuildInfo(); ok {
		if ver == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			ver = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	if ver == "" {
		ver = "devel"
	}
	return ver, rev
}

func newVersionCmd(io *IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print pftap's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintln(io.Out, versionString())
			return err
		},
	}
}
