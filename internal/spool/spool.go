package spool

import "errors"

const (
	// align is what O_DIRECT asks of buffers, offsets and lengths.
	align = 4096
	// DefaultChunk is the size of one chunk.
	DefaultChunk = 1 << 20
	// DefaultChunks is how many chunks a File fills while the disk writes.
	DefaultChunks = 16
)

// ErrSealed is returned by Write after Reader was called.
var ErrSealed = errors.New("spool: written after it was read")
