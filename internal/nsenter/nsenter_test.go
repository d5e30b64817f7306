//go:build linux

package nsenter

import (
	"fmt"
	"github.com/pftap/pftap/internal/testenv"
	"net"
	"os"
	"testing"
)

func TestCreateDoDelete(t *testing.T) {
	testenv.NeedRoot(t, "creates a network namespace (CAP_SYS_ADMIN)")
	name := fmt.Sprintf("pftap-nstest-%d", os.Getpid())
	self := Self()
	if err := Create(name); err != nil {
		t.Fatal(err)
	}
	defer Delete(name)
	if Self() != self {
		t.Fatal("Create moved the calling thread")
	}
	var names []string
	err := Do(name, func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			names = append(names, i.Name)
			if i.Name == "lo" && i.Flags&net.FlagUp == 0 {
				return fmt.Errorf("lo is down in a new namespace")
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "lo" {
		t.Errorf("a new namespace has %v, want only lo", names)
	}
	for i := 0; i < 50; i++ { // threads must come back to the original namespace
		Do(name, func() error { return nil })
		if Self() != self {
			t.Fatal("a thread was left in the lab namespace")
		}
	}
	if err := Do("pftap-no-such-ns", func() error { return nil }); err == nil {
		t.Error("Do into a missing namespace succeeded")
	}
	if err := Delete(name); err != nil {
		t.Fatal(err)
	}
	if l, _ := List(name); len(l) != 0 {
		t.Errorf("left %v", l)
	}
}
