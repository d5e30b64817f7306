package session

import (
	"flag"
	"io"

	"k8s.io/klog/v2"
)

// QuietUpstream stops the upstream Kubernetes code (klog: the lab's, and
// client-go's) from writing to the terminal: its complaints about
// connections pftap itself closes would read like pftap's own errors.
func QuietUpstream() {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	fs.Set("logtostderr", "false")
	fs.Set("alsologtostderr", "false")
	fs.Set("stderrthreshold", "FATAL")
	klog.SetOutput(io.Discard)
}
