package main

import (
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// pluginName is the name kubectl finds a plugin by: `kubectl pftap` runs
// kubectl-pftap from PATH.
const pluginName = "kubectl-pftap"

// asPlugin says whether this process was started as kubectl's plugin
// (its name, as kubectl runs it, is kubectl-pftap).
func asPlugin(arg0 string) bool {
	base := strings.TrimSuffix(filepath.Base(arg0), ".exe")
	return base == pluginName
}

// pluginNames makes usage and examples say `kubectl pftap ...`, as the
// user typed it.
func pluginNames(root *cobra.Command) {
	root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl pftap"}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example != "" {
			lines := strings.Split(c.Example, "\n")
			for i, l := range lines {
				lines[i] = asKubectlPlugin(l)
			}
			c.Example = strings.Join(lines, "\n")
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// asKubectlPlugin rewrites one example line: every pftap that is run as a
// command (a word of its own: after sudo, an environment assignment or a
// pipe) becomes `kubectl pftap`, once.
func asKubectlPlugin(line string) string {
	words := strings.Split(line, " ")
	for i, w := range words {
		if w == "pftap" && (i == 0 || words[i-1] != "kubectl") {
			words[i] = "kubectl pftap"
		}
	}
	return strings.Join(words, " ")
}
