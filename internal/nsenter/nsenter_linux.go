//go:build linux

package nsenter

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Path resolves a namespace reference to a path: a name under /run/netns,
// "pid:N" for a process's namespace, or a path as is. "" means the current
// process's namespace.
func Path(ref string) string {
	switch {
	case ref == "":
		return "/proc/self/ns/net"
	case strings.HasPrefix(ref, "pid:"):
		return "/proc/" + strings.TrimPrefix(ref, "pid:") + "/ns/net"
	case strings.ContainsRune(ref, '/'):
		return ref
	}
	return filepath.Join("/run/netns", ref)
}

// Do runs fn inside the network namespace named by ref (see Path).
func Do(ref string, fn func() error) error {
	p := Path(ref)
	h, err := netns.GetFromPath(p)
	if err != nil {
		return describe("open network namespace "+p, err)
	}
	defer h.Close()
	return DoHandle(h, fn)
}

// DoHandle runs fn inside the namespace of an open handle.
func DoHandle(h netns.NsHandle, fn func() error) error {
	return onFreshThread(func() error {
		if err := netns.Set(h); err != nil {
			return describe("enter network namespace", err)
		}
		return nil
	}, fn)
}

// Create makes a new named network namespace (bind-mounted under
// /run/netns, like `ip netns add`) with its loopback up, without moving
// the calling thread.
func Create(name string) error {
	err := onFreshThread(func() error {
		h, err := netns.NewNamed(name) // creates it and moves the thread in
		if err != nil {
			return describe("create network namespace "+name, err)
		}
		h.Close()
		return nil
	}, loopbackUp)
	if err != nil && exists(name) {
		_ = netns.DeleteNamed(name)
	}
	return err
}

// onFreshThread runs enter and then fn on a goroutine locked to its OS
// thread, and puts the thread back into its original network namespace
// afterwards (also when enter failed half way). A thread that cannot be
// put back is never unlocked, so the runtime ends it with the goroutine
// instead of reusing it in the wrong namespace.
func onFreshThread(enter, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- describe("read current network namespace", err)
			return
		}
		defer orig.Close()
		ferr := enter()
		if ferr == nil {
			ferr = fn()
		}
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, describe("return to the original network namespace", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Delete removes a named network namespace. A namespace that does not exist
// is not an error.
func Delete(name string) error {
	err := netns.DeleteNamed(name)
	if err != nil && (errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.EINVAL) && !exists(name)) {
		return nil
	}
	if err != nil {
		return describe("delete network namespace "+name, err)
	}
	return nil
}

func exists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}

// List returns the names under /run/netns that start with prefix.
func List(prefix string) ([]string, error) {
	ents, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// loopbackUp sets lo up in the calling thread's namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return describe("socket", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return describe("read lo flags", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return describe("set lo up", err)
	}
	return nil
}

// describe wraps a syscall failure with what was being done, and says which
// privilege is missing when the kernel refused.
func describe(op string, err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%s: %w (needs root, or CAP_SYS_ADMIN for namespaces)", op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Self returns a description of the current process's namespace, for
// messages: its inode.
func Self() string {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		return "?"
	}
	return "net:[" + strconv.FormatUint(st.Ino, 10) + "]"
}
