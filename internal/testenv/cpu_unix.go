//go:build unix

package testenv

import (
	"syscall"
	"time"
)

// CPUTime is the CPU time this process and its waited-for children have
// used (user and system), for benchmarks that report CPU per unit of work.
func CPUTime() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}
