package agent

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"strings"
	"testing"
)

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
