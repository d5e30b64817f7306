package session

import (
	"context"
	"net"
	"strings"
	"testing"
)

// TestSendRequestsBodyCutShort: a response whose body ends before its
// Content-Length (the forward broke, or the user pressed ^C) is a failed
// request, not "200 OK".
func TestSendRequestsBodyCutShort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		c.Read(buf)
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789"))
		c.Close()
	}()
	res := Send(context.Background(), ln.Addr().(*net.TCPAddr).Port, []Request{{"GET", "/bytes?n=1000"}}, SendOptions{})
	if len(res) != 1 || res[0].Err == nil {
		t.Fatalf("a cut-short body passed: %+v", res)
	}
	if !strings.Contains(res[0].Err.Error(), "cut short after 10 bytes") || res[0].Bytes != 10 {
		t.Errorf("err %v, %d bytes", res[0].Err, res[0].Bytes)
	}
}
