//go:build linux

package capture

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pftap/pftap/internal/testenv"

	"github.com/pftap/pftap/internal/nsenter"
)

func needRoot(t testing.TB) {
	t.Helper()
	testenv.NeedRoot(t, "creates network namespaces and packet sockets (CAP_SYS_ADMIN, CAP_NET_RAW)")
}

var nsCount atomic.Int64

// testPod makes a namespace with lo up and an eth0 (a veth whose peer sits
// in a second namespace of its own, so the host is not touched), with
// private addresses that exist only inside them. Both are removed when
// the test ends, also when it fails.
func testPod(t testing.TB) string {
	t.Helper()
	needRoot(t)
	name := fmt.Sprintf("pftap-ct-%d-%d", os.Getpid(), nsCount.Add(1))
	peer := name + "-peer"
	for _, n := range []string{name, peer} {
		if err := nsenter.Create(n); err != nil {
			t.Fatal(err)
		}
		n := n
		t.Cleanup(func() {
			if err := nsenter.Delete(n); err != nil {
				t.Errorf("delete %s: %v", n, err)
			}
		})
	}
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	sh("-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", peer)
	sh("-n", name, "addr", "add", "10.251.7.2/24", "dev", "eth0")
	sh("-n", peer, "addr", "add", "10.251.7.1/24", "dev", "eth0")
	sh("-n", name, "link", "set", "eth0", "up")
	sh("-n", peer, "link", "set", "eth0", "up")
	return name
}

// listenIn opens a TCP listener inside a namespace.
func listenIn(t testing.TB, ns, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	if err := nsenter.Do(ns, func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// dialIn dials from inside a namespace.
func dialIn(t testing.TB, ns, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	if err := nsenter.Do(ns, func() error {
		var err error
		c, err = net.Dial("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return c
}
