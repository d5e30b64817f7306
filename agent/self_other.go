//go:build !linux

package agent

import "github.com/pftap/pftap/capture"

func snapshot(netns string, ports map[int]bool) (map[sock]counters, error) {
	return nil, capture.ErrNotSupported
}
