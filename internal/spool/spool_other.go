//go:build !unix

package spool

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sync"
)

// File is an append-only stream of bytes in a temporary file (through the
// page cache on this system). A File is safe for one writer and, once
// sealed by Reader, for any number of sequential readers.
type File struct {
	mu     sync.Mutex
	f      *os.File
	w      *bufio.Writer
	size   int64
	sealed bool
}

// New creates a spool in dir ("" for the system's temporary directory).
// chunk sizes its buffer; n is not used on this system.
func New(dir string, chunk, n int) (*File, error) {
	f, err := os.CreateTemp(dir, "pftap-spool-")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if chunk <= 0 {
		chunk = DefaultChunk
	}
	return &File{f: f, w: bufio.NewWriterSize(f, chunk)}, nil
}

// Direct reports whether the file bypasses the page cache: never here.
func (f *File) Direct() bool { return false }

// Size is the number of bytes written.
func (f *File) Size() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size
}

// Write appends the concatenation of parts.
func (f *File) Write(parts ...[]byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sealed {
		return ErrSealed
	}
	for _, p := range parts {
		n, err := f.w.Write(p)
		f.size += int64(n)
		if err != nil {
			return fmt.Errorf("spool: write: %w", err)
		}
	}
	return nil
}

// Reader seals the spool and returns a reader of everything written, from
// the start. It may be called again for another pass.
func (f *File) Reader() (io.Reader, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.sealed {
		f.sealed = true
		if err := f.w.Flush(); err != nil {
			return nil, fmt.Errorf("spool: write: %w", err)
		}
	}
	return bufio.NewReaderSize(io.NewSectionReader(f.f, 0, f.size), 1<<20), nil
}

// Close removes the file.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return nil
	}
	name := f.f.Name()
	f.f.Close()
	f.f = nil
	return os.Remove(name)
}
