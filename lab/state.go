//go:build linux

package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pftap/pftap/internal/nsenter"
)

// StateDir holds one JSON file per running lab.
var StateDir = "/run/pftap/labs"

// State is what a lab records about itself, so that `pftap lab status`,
// `down` and `clean` can find it (and what it left) from another process.
type State struct {
	Name       string    `json:"name"`
	PID        int       `json:"pid"`
	Started    time.Time `json:"started"`
	Runtime    string    `json:"runtime"`
	App        string    `json:"app"`
	Subnet     string    `json:"subnet"`
	Namespaces []string  `json:"namespaces"`
	HostLink   string    `json:"host_link"`
	// HostLinkIndex is the host link's ifindex: another lab may later get a
	// link of the same name, never the same index.
	HostLinkIndex int    `json:"host_link_index"`
	Dir           string `json:"dir"`
	OwnDir        bool   `json:"own_dir"`
	Kubeconfig    string `json:"kubeconfig"`
	APIServer     string `json:"apiserver"`
	Pod           string `json:"pod"`
	PodIP         string `json:"pod_ip"`
	PIDs          []int  `json:"pids,omitempty"`
	// SandboxNetns is the pod sandbox's network namespace when the
	// runtime made it (containerd, through CNI).
	SandboxNetns string `json:"sandbox_netns,omitempty"`
	// Sysctls are the kernel settings as they were before the real
	// kubelet changed them, KubeletDirs the fixed directories it made:
	// put back and removed by Clean.
	Sysctls     map[string]string `json:"sysctls,omitempty"`
	KubeletDirs []string          `json:"kubelet_dirs,omitempty"`
	// Alive is filled in by ListStates: the lab's process still runs.
	Alive bool `json:"-"`
}

func (l *Lab) state() State {
	st := State{Name: l.cfg.Name, PID: os.Getpid(), Started: time.Now(), Runtime: l.cfg.Runtime, App: l.cfg.App,
		Subnet: l.cfg.Subnet.String(), Namespaces: nonEmpty(l.CPNetns, l.NodeNetns, l.PodNetns, l.OtherPodNetns), HostLink: l.addr.hostLink, HostLinkIndex: l.hostLinkIndex,
		Dir: l.dir, OwnDir: l.ownDir, Kubeconfig: l.Kubeconfig, Pod: l.cfg.Namespace + "/" + l.cfg.Pod, PIDs: l.pids}
	if l.APIServer != nil {
		st.APIServer = l.APIServer.String()
	}
	if l.addr.pod.IsValid() {
		st.PodIP = l.addr.pod.String()
	}
	if c := l.containerd; c != nil {
		st.Namespaces = st.Namespaces[:2]
		st.SandboxNetns = c.netns
	}
	st.Sysctls, st.KubeletDirs = l.sysctls, l.kubeletDirs
	return st
}

func (l *Lab) statePath() string { return filepath.Join(StateDir, l.cfg.Name+".json") }

// writeState records the lab; it is written before anything is made, and
// again once the lab is up.
func (l *Lab) writeState() error {
	if err := os.MkdirAll(StateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	b, _ := json.MarshalIndent(l.state(), "", "  ")
	return os.WriteFile(l.statePath(), b, 0o600)
}

func (l *Lab) removeState() { os.Remove(l.statePath()) }

// ListStates returns the recorded labs, oldest first.
func ListStates() ([]State, error) {
	files, err := filepath.Glob(filepath.Join(StateDir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []State
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var st State
		if json.Unmarshal(b, &st) != nil {
			continue
		}
		st.Alive = alive(st.PID)
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, nil
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	// A zombie is dead, whether or not its parent has reaped it yet.
	return (err == nil || errors.Is(err, syscall.EPERM)) && procState(pid) != "Z"
}

// procState is the process's state letter (R, S, Z...).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) {
		return string(b[i+2])
	}
	return ""
}

// Clean removes what labs whose process is gone left behind: their
// processes, namespaces (with the veths in them), host links, files and
// state; and namespaces named pftap-<pid>-... of dead processes that have
// no state file. It returns a line per thing removed.
func Clean() ([]string, error) {
	var done []string
	var errs []error
	states, err := ListStates()
	if err != nil {
		return nil, err
	}
	for _, st := range states {
		if st.Alive {
			continue
		}
		for _, pid := range st.PIDs {
			if alive(pid) && cmdlineHas(pid, st.Name) {
				syscall.Kill(-pid, syscall.SIGKILL)
				syscall.Kill(pid, syscall.SIGKILL)
				done = append(done, fmt.Sprintf("killed process %d", pid))
			}
		}
		// A containerd's shims and containers live outside the lab's
		// namespaces and process group.
		if st.Runtime == RuntimeContainerd {
			done = append(done, cleanContainerd(st.Dir, "/"+st.Name, st.Name, st.SandboxNetns)...)
			done = append(done, cleanSandboxNetns(st.Subnet)...)
		}
		if st.Sysctls != nil {
			// A real kubelet ran as the node: its host-wide changes.
			done = append(done, undoKubelet(st.Dir, st.Sysctls, st.KubeletDirs)...)
		}
		// Whatever still lives in the lab's namespaces (an app's children)
		// belongs to it.
		for _, pid := range pidsInNamespaces(st.Namespaces) {
			syscall.Kill(pid, syscall.SIGKILL)
			done = append(done, fmt.Sprintf("killed process %d%s", pid, procComm(pid)))
		}
		for _, ns := range st.Namespaces {
			if _, err := os.Stat(nsenter.Path(ns)); err == nil {
				if err := nsenter.Delete(ns); err != nil {
					errs = append(errs, err)
				} else {
					done = append(done, "deleted network namespace "+ns)
				}
			}
		}
		if st.HostLinkIndex != 0 && hostLinkExists(st.HostLinkIndex) {
			deleteHostLinkIndex(st.HostLinkIndex)
			done = append(done, "deleted link "+st.HostLink)
		}
		if st.OwnDir && strings.Contains(st.Dir, st.Name) {
			if _, err := os.Stat(st.Dir); err == nil {
				os.RemoveAll(st.Dir)
				done = append(done, "removed "+st.Dir)
			}
		}
		os.Remove(filepath.Join(StateDir, st.Name+".json"))
		done = append(done, "forgot lab "+st.Name)
	}
	// Namespaces of dead labs that never wrote state.
	names, _ := nsenter.List(Prefix)
	for _, ns := range names {
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(ns, Prefix), "-", 2)[0])
		if err != nil || alive(pid) {
			continue
		}
		if err := nsenter.Delete(ns); err == nil {
			done = append(done, "deleted network namespace "+ns)
		}
	}
	return done, errors.Join(errs...)
}

func cmdlineHas(pid int, s string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(b), s)
}

// ErrSeveralLabs: Down was given no name while several labs run.
var ErrSeveralLabs = errors.New("several labs are running")

// Down stops the running lab named name (or the only one when name is "")
// with SIGTERM and waits up to wait for it to remove itself.
func Down(name string, wait time.Duration) (State, error) {
	states, err := ListStates()
	if err != nil {
		return State{}, err
	}
	var running []State
	for _, st := range states {
		if st.Alive && (name == "" || st.Name == name) {
			running = append(running, st)
		}
	}
	switch {
	case len(running) == 0 && name != "":
		return State{}, fmt.Errorf("no running lab named %q (pftap lab status lists them)", name)
	case len(running) == 0:
		return State{}, errors.New("no lab is running")
	case len(running) > 1:
		var names []string
		for _, st := range running {
			names = append(names, st.Name)
		}
		return State{}, fmt.Errorf("%w (%s): name one", ErrSeveralLabs, strings.Join(names, ", "))
	}
	st := running[0]
	if err := syscall.Kill(st.PID, syscall.SIGTERM); err != nil {
		return st, fmt.Errorf("stop lab %s (pid %d): %w", st.Name, st.PID, err)
	}
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(StateDir, st.Name+".json")); os.IsNotExist(err) {
			return st, nil
		}
	}
	return st, fmt.Errorf("lab %s (pid %d) did not stop within %v; pftap lab clean removes what it leaves", st.Name, st.PID, wait)
}

// pidsInNamespaces returns the processes whose network namespace is one of
// the named ones.
func pidsInNamespaces(names []string) []int {
	inodes := map[uint64]bool{}
	for _, n := range names {
		var st syscall.Stat_t
		if syscall.Stat(nsenter.Path(n), &st) == nil {
			inodes[st.Ino] = true
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		var st syscall.Stat_t
		if syscall.Stat(p+"/ns/net", &st) != nil || !inodes[st.Ino] {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimPrefix(p, "/proc/")); err == nil && pid != os.Getpid() {
			out = append(out, pid)
		}
	}
	return out
}

func procComm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return " (" + strings.TrimSpace(string(b)) + ")"
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
