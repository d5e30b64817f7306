package nsenter

import "errors"

// ErrNotSupported is pftap's one "not on this OS" error: every package
// whose work needs Linux (network namespaces, packet sockets, the lab)
// returns an error that wraps it (capture.ErrNotSupported and
// lab.ErrNotSupported are this same value), so that errors.Is tells it
// apart wherever it comes from.
var ErrNotSupported = errors.New("not supported on this OS: it needs Linux")
