//go:build unix

package spool

import (
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// File is an append-only stream of bytes in an unlinked temporary file. A
// File is safe for one writer and, once sealed by Reader, for any number
// of sequential readers.
type File struct {
	fd     int
	direct bool
	chunk  int

	mu     sync.Mutex // guards the fields below and serialises Write
	cur    []byte     // the chunk being filled; len is what it holds
	size   int64      // bytes appended
	sealed bool

	full chan job
	free chan []byte
	done chan struct{}
	err  error // first write error, set by the writer goroutine before done
	werr sync.Mutex
	bufs [][]byte // every chunk, for Close

	closing   chan struct{} // closed by Close: read-aheads stop
	closeOnce sync.Once
	readers   sync.WaitGroup
}

type job struct {
	buf []byte // len rounded up to align
	off int64
}

// New creates a spool in dir ("" for the system's temporary directory)
// with chunks of chunk bytes (rounded up to 4 KiB) of which n at most wait
// for the disk.
func New(dir string, chunk, n int) (*File, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	if chunk <= 0 {
		chunk = DefaultChunk
	}
	chunk = (chunk + align - 1) &^ (align - 1)
	if n < 2 {
		n = 2
	}
	f := &File{fd: -1, chunk: chunk, full: make(chan job, n), free: make(chan []byte, n+1), done: make(chan struct{}), closing: make(chan struct{})}
	tmp, err := os.CreateTemp(dir, "pftap-spool-")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	name := tmp.Name()
	tmp.Close()
	// Reopen the name just made with O_DIRECT where allowed, then unlink
	// it: nothing is left behind, even after a SIGKILL.
	fd := -1
	if oDirect != 0 {
		if fd, err = unix.Open(name, unix.O_RDWR|unix.O_CLOEXEC|oDirect, 0); err == nil {
			f.direct = true
		}
	}
	if fd < 0 {
		fd, err = unix.Open(name, unix.O_RDWR|unix.O_CLOEXEC, 0)
	}
	os.Remove(name)
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", name, err)
	}
	f.fd = fd
	for i := 0; i < n+1; i++ {
		b, err := unix.Mmap(-1, 0, chunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("spool: %w", err)
		}
		f.bufs = append(f.bufs, b)
		if i < n {
			f.free <- b[:0]
		} else {
			f.cur = b[:0]
		}
	}
	go f.writer()
	return f, nil
}

// Direct reports whether the file bypasses the page cache.
func (f *File) Direct() bool { return f.direct }

// Size is the number of bytes written.
func (f *File) Size() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size
}

func (f *File) writer() {
	defer close(f.done)
	for j := range f.full {
		if err := f.pwrite(j.buf, j.off); err != nil {
			f.werr.Lock()
			if f.err == nil {
				f.err = err
			}
			f.werr.Unlock()
		}
		f.free <- j.buf[:0]
	}
}

func (f *File) pwrite(b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(f.fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EINVAL && f.direct {
			// The file system took the open but not the write: go on
			// through the page cache.
			fl, ferr := unix.FcntlInt(uintptr(f.fd), unix.F_GETFL, 0)
			if ferr == nil {
				_, ferr = unix.FcntlInt(uintptr(f.fd), unix.F_SETFL, fl&^oDirect)
			}
			if ferr != nil {
				return fmt.Errorf("spool: write: %w", err)
			}
			f.direct = false
			continue
		}
		if err != nil {
			return fmt.Errorf("spool: write: %w", err)
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func (f *File) writeErr() error {
	f.werr.Lock()
	defer f.werr.Unlock()
	return f.err
}

// Write appends the concatenation of parts, copying them. It waits only
// when every chunk is queued for the disk.
func (f *File) Write(parts ...[]byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sealed {
		return ErrSealed
	}
	if err := f.writeErr(); err != nil {
		return err
	}
	for _, p := range parts {
		for len(p) > 0 {
			n := copy(f.cur[len(f.cur):cap(f.cur)], p)
			f.cur = f.cur[:len(f.cur)+n]
			p = p[n:]
			f.size += int64(n)
			if len(f.cur) == cap(f.cur) {
				f.full <- job{buf: f.cur, off: f.size - int64(len(f.cur))}
				f.cur = <-f.free
			}
		}
	}
	return nil
}

// seal writes what is left (padded to the alignment O_DIRECT needs) and
// waits for the disk. Writes after it fail.
func (f *File) seal() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.sealed {
		f.sealed = true
		if len(f.cur) > 0 {
			n := (len(f.cur) + align - 1) &^ (align - 1)
			tail := f.cur[:n]
			clear(tail[len(f.cur):])
			f.full <- job{buf: tail, off: f.size - int64(len(f.cur))}
		}
		close(f.full)
		<-f.done
	}
	return f.writeErr()
}

// Reader seals the spool and returns a reader of everything written, from
// the start. It may be called again for another pass. A goroutine reads
// ahead into a second chunk while the caller works on the first.
func (f *File) Reader() (io.Reader, error) {
	if err := f.seal(); err != nil {
		return nil, err
	}
	r := &reader{f: f, full: make(chan readResult, 1), empty: make(chan []byte, 2)}
	for i := 0; i < 2; i++ {
		b, err := unix.Mmap(-1, 0, f.chunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		f.mu.Lock()
		f.bufs = append(f.bufs, b)
		f.mu.Unlock()
		r.empty <- b
	}
	f.readers.Add(1)
	go r.readAhead()
	return r, nil
}

type readResult struct {
	buf []byte
	err error
}

type reader struct {
	f     *File
	cur   []byte // cur[pos:] is unread
	pos   int
	full  chan readResult // chunks read, in order; closed at the end
	empty chan []byte     // chunks the caller is done with
	err   error
}

// readAhead reads the file chunk by chunk into the reader's two buffers
// until the end, a read error, or Close.
func (r *reader) readAhead() {
	defer r.f.readers.Done()
	defer close(r.full)
	for off := int64(0); off < r.f.size; {
		var b []byte
		select {
		case b = <-r.empty:
		case <-r.f.closing:
			return
		}
		b = b[:cap(b)]
		n, err := unix.Pread(r.f.fd, b, off)
		for err == unix.EINTR {
			n, err = unix.Pread(r.f.fd, b, off)
		}
		switch {
		case err != nil:
			err = fmt.Errorf("spool: read: %w", err)
		case n == 0:
			err = fmt.Errorf("spool: read: %w", io.ErrUnexpectedEOF)
		}
		if left := r.f.size - off; int64(n) > left {
			n = int(left) // the padding of the last chunk
		}
		select {
		case r.full <- readResult{b[:max(n, 0)], err}:
		case <-r.f.closing:
			return
		}
		if err != nil {
			return
		}
		off += int64(n)
	}
}

func (r *reader) Read(p []byte) (int, error) {
	for r.pos == len(r.cur) {
		if r.err != nil {
			return 0, r.err
		}
		if r.cur != nil {
			r.empty <- r.cur
			r.cur = nil
		}
		res, ok := <-r.full
		if !ok {
			r.err = io.EOF
			return 0, io.EOF
		}
		if res.err != nil {
			r.err = res.err
			return 0, res.err
		}
		r.cur, r.pos = res.buf, 0
	}
	n := copy(p, r.cur[r.pos:])
	r.pos += n
	return n, nil
}

// Close frees the chunks and the file. Readers must not be used after it.
func (f *File) Close() error {
	f.seal()
	f.closeOnce.Do(func() { close(f.closing) })
	f.readers.Wait() // no read-ahead is using a chunk any more
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.bufs {
		unix.Munmap(b)
	}
	f.bufs = nil
	if f.fd >= 0 {
		unix.Close(f.fd)
		f.fd = -1
	}
	return nil
}
