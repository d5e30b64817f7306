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
				trimmed := strings.TrimLeft(l, " ")
				indent := l[:len(l)-len(trimmed)]
				for _, p := range []string{"pftap ", "sudo pftap "} {
					if strings.HasPrefix(trimmed, p) {
						lines[i] = indent + strings.Replace(trimmed, "pftap ", "kubectl pftap ", 1)
						break
					}
				}
				// A command after an env assignment or a pipe.
				lines[i] = strings.ReplaceAll(lines[i], " pftap trace ", " kubectl pftap trace ")
			}
			c.Example = strings.Join(lines, "\n")
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
