package pfclient

import (
	"context"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/runtime"
)

// ClientError is one error client-go's port-forwarder reported while it
// forwarded (what kubectl prints as an "Unhandled Error" line), when it
// did: a local connection that failed, a stream it could not make, the
// error stream's text.
type ClientError struct {
	Time time.Time
	// LocalPort is the local port of the connection it concerns.
	LocalPort int
	// Line is as kubectl words it: the message, then the error.
	Line string
}

// client-go reports these through runtime.HandleError, a process-wide
// list of handlers, with the local port among its key/value pairs: one
// handler, installed once, gives each to the Forwarder that listens on
// that port.
var (
	errMu     sync.Mutex
	errByPort = map[int]func(ClientError){}
)

func init() {
	runtime.ErrorHandlers = append(runtime.ErrorHandlers, routeError)
}

func routeError(_ context.Context, err error, msg string, kv ...any) {
	port := -1
	for i := 0; i+1 < len(kv); i += 2 {
		if k, _ := kv[i].(string); k == "localPort" {
			port = portOf(kv[i+1])
		}
	}
	if port < 0 {
		return
	}
	errMu.Lock()
	fn := errByPort[port]
	errMu.Unlock()
	if fn == nil {
		return
	}
	line := msg
	if err != nil {
		line += ": " + err.Error()
	}
	fn(ClientError{Time: time.Now(), LocalPort: port, Line: line})
}

// portOf reads a port client-go passed as any integer type.
func portOf(v any) int {
	switch p := v.(type) {
	case uint16:
		return int(p)
	case int32:
		return int(p)
	case int:
		return p
	case uint32:
		return int(p)
	case int64:
		return int(p)
	case string:
		if n, err := strconv.Atoi(p); err == nil {
			return n
		}
	}
	return -1
}

// routeErrorsOf sends client-go's errors about ports to fn until the
// returned function is called.
func routeErrorsOf(ports []int, fn func(ClientError)) func() {
	errMu.Lock()
	for _, p := range ports {
		errByPort[p] = fn
	}
	errMu.Unlock()
	return func() {
		errMu.Lock()
		for _, p := range ports {
			delete(errByPort, p)
		}
		errMu.Unlock()
	}
}
