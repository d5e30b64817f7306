//go:build linux

package capture

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// writevFunc returns a function that writes all parts to f with writev(2),
// retrying on short writes.
func writevFunc(f *os.File) func(parts ...[]byte) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	return func(parts ...[]byte) error {
		var werr error
		err := rc.Write(func(fd uintptr) bool {
			for len(parts) > 0 {
				n, err := unix.Writev(int(fd), parts)
				if err == unix.EINTR {
					continue
				}
				if err != nil {
					werr = err
					return true
				}
				for n > 0 && len(parts) > 0 {
					if n >= len(parts[0]) {
						n -= len(parts[0])
						parts = parts[1:]
					} else {
						parts[0] = parts[0][n:]
						n = 0
					}
				}
				for len(parts) > 0 && len(parts[0]) == 0 {
					parts = parts[1:]
				}
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("writev: %w", err)
		}
		return werr
	}
}
