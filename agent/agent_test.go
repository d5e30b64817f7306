package agent

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
)

func TestParseListeners(t *testing.T) {
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0A00FA0A:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0100007F:0050 0100007F:D3A2 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
`
	tcp6 := `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 100 0 0 10 0
`
	got := fmt.Sprint(append(parseListeners(tcp), parseListeners(tcp6)...))
	want := "[127.0.0.1:80 10.250.0.10:8081 [::]:443 [::1]:22]"
	if got != want {
		t.Errorf("listeners %s, want %s", got, want)
	}
}

// TestAgentRefusesOtherVersion: a trace of protocol 1 (no version in its
// request) gets one line saying what to do, and nothing is tapped.
func TestAgentRefusesOtherVersion(t *testing.T) {
	a, err := New(Options{Token: "a-token-long-enough", NoProbe: true})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go a.Serve(l)
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := json.NewEncoder(c).Encode(Request{Token: "a-token-long-enough", PodIP: "10.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	var h Hello
	if err := json.NewDecoder(c).Decode(&h); err != nil {
		t.Fatal(err)
	}
	want := "this agent speaks protocol 2 and the trace that connected speaks 1 (an older pftap)"
	if h.Version != ProtocolVersion || !strings.Contains(h.Error, want) || !strings.Contains(h.Error, "pftap agent image") {
		t.Errorf("hello %+v, want version %d and %q", h, ProtocolVersion, want)
	}
}
