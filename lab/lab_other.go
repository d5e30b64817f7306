//go:build !linux

package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Start fails with ErrNotSupported: the lab needs Linux.
func Start(ctx context.Context, cfg Config) (*Lab, error) { return nil, errLab }

// Close does nothing.
func (l *Lab) Close() error { return nil }

// Dir is "".
func (l *Lab) Dir() string { return "" }

// PodIP is the zero address.
func (l *Lab) PodIP() netip.Addr { return netip.Addr{} }

// HostLink is "".
func (l *Lab) HostLink() string { return "" }

// State is what a lab records about itself.
type State struct {
	Name, Runtime, App, Subnet, Kubeconfig, APIServer, Pod, PodIP, Dir string
	PID                                                                int
	Started                                                            time.Time
	Alive                                                              bool
}

// ListStates fails with ErrNotSupported.
func ListStates() ([]State, error) { return nil, ErrNotSupported }

// Clean fails with ErrNotSupported.
func Clean() ([]string, error) { return nil, ErrNotSupported }

// ErrSeveralLabs: Down was given no name while several labs run.
var ErrSeveralLabs = errors.New("several labs are running")

// Down fails with ErrNotSupported.
func Down(name string, wait time.Duration) (State, error) { return State{}, ErrNotSupported }

// errLab says what needs Linux.
var errLab = fmt.Errorf("the lab (network namespaces, veths): %w", ErrNotSupported)

// containerd is the containerd runtime's state (Linux only).
type containerd struct{}

// ContainerdInstalled fails: the containerd runtime needs Linux.
func ContainerdInstalled() error { return errLab }

// AppLog is nil: no lab runs here.
func (l *Lab) AppLog() []AppRequest { return nil }

// ContainerdAddress is "": no lab runs here.
func (l *Lab) ContainerdAddress() string { return "" }

// RuntimeVersion is the runtime daemon's version (none here).
func (l *Lab) RuntimeVersion() string { return "" }

func (c *Config) realAPIDefaults() error { return errLab }

func (c *Config) realKubeletDefaults() error { return errLab }

// realAPI is the real kube-apiserver's state (Linux only).
type realAPI struct{}

type realKubelet struct{}

// APIServerVersion is "": no lab runs here.
func (l *Lab) APIServerVersion() string { return "" }

// KubeletVersion is the real kubelet's version (none here).
func (l *Lab) KubeletVersion() string { return "" }

// connSet is a listener's connections (Linux only).
type connSet struct{}

// KillRuntime fails: no lab runs here.
func (l *Lab) KillRuntime() error { return errLab }

// RemoveSandbox does nothing: no lab runs here.
func (l *Lab) RemoveSandbox() {}

// FreezeRuntime fails: no lab runs here.
func (l *Lab) FreezeRuntime() error { return errLab }

// Metrics is the real apiserver's /metrics lines (none here).
func (l *Lab) Metrics(ctx context.Context, substr string) ([]string, error) { return nil, errLab }
