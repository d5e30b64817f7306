package packet

import (
	"errors"
	"io"
	"io/fs"
	"sync"
)

// readAhead reads its source on a goroutine of its own, up to a few
// buffers ahead of the Reader parsing what it read: the kernel's copy of
// a file (or a decompressor's work) then runs beside the decoding instead
// of before it. It is also the parser's buffered reader (Peek), so no
// byte is copied once more on its way. Memory stays at depth buffers
// whatever the size of the source.
type readAhead struct {
	full chan *raBuf // filled by fill, in order; closed when it stops
	free chan *raBuf // buffers the reader is done with
	done chan struct{}
	stop sync.Once

	cur   *raBuf // the buffer being read
	off   int    // read position in cur
	carry []byte // take's bytes that spanned two buffers
}

type raBuf struct {
	b   []byte
	n   int
	err error // what the source returned after these n bytes
}

// errReadAheadClosed is what a read after Close returns.
var errReadAheadClosed = errors.New("capture reader closed")

const (
	readAheadSize  = 1 << 20
	readAheadMin   = 64 << 10
	readAheadDepth = 4
)

// newReadAhead starts reading r. Its buffers are 1 MiB, or smaller for a
// source that says it is small (a short file, bytes in memory), so that
// opening many small recordings costs little.
func newReadAhead(r io.Reader) *readAhead {
	size := readAheadSize
	if hint, ok := sizeHint(r); ok {
		size = int(min(max(hint+1, readAheadMin), readAheadSize))
	}
	ra := &readAhead{
		full: make(chan *raBuf, readAheadDepth),
		free: make(chan *raBuf, readAheadDepth),
		done: make(chan struct{}),
	}
	for range readAheadDepth {
		ra.free <- &raBuf{b: make([]byte, size)}
	}
	go ra.fill(r)
	return ra
}

// fill reads the source into free buffers until it fails or ends, or the
// reader is closed. Each buffer holds what one Read returned, so a pipe's
// bytes are passed on as soon as they come.
func (ra *readAhead) fill(r io.Reader) {
	defer close(ra.full)
	for {
		var b *raBuf
		select {
		case b = <-ra.free:
		case <-ra.done:
			return
		}
		b.n, b.err = 0, nil
		for b.n == 0 && b.err == nil {
			b.n, b.err = r.Read(b.b)
		}
		select {
		case ra.full <- b:
		case <-ra.done:
			return
		}
		if b.err != nil {
			return
		}
	}
}

// next makes cur a buffer with unread bytes, or returns the source's error.
func (ra *readAhead) next() error {
	for ra.cur == nil || ra.off == ra.cur.n {
		if ra.cur != nil {
			if ra.cur.err != nil {
				return ra.cur.err
			}
			ra.free <- ra.cur // never blocks: free holds every buffer at most
			ra.cur = nil
		}
		b, ok := <-ra.full
		if !ok {
			return errReadAheadClosed
		}
		ra.cur, ra.off = b, 0
	}
	return nil
}

func (ra *readAhead) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := ra.next(); err != nil {
		return 0, err
	}
	n := copy(p, ra.cur.b[ra.off:ra.cur.n])
	ra.off += n
	return n, nil
}

// Peek returns the next n bytes without consuming them (n at most a
// buffer's size). Bytes split over two of the source's reads are joined
// into a buffer of their own; that happens at most at the start of a
// stream, where the format is detected.
func (ra *readAhead) Peek(n int) ([]byte, error) {
	if err := ra.next(); err != nil {
		return nil, err
	}
	for ra.cur.n-ra.off < n && ra.cur.err == nil {
		b, ok := <-ra.full
		if !ok {
			return nil, errReadAheadClosed
		}
		joined := &raBuf{b: make([]byte, max(len(b.b), ra.cur.n-ra.off+b.n)), err: b.err}
		joined.n = copy(joined.b, ra.cur.b[ra.off:ra.cur.n])
		joined.n += copy(joined.b[joined.n:], b.b[:b.n])
		ra.free <- b
		ra.cur, ra.off = joined, 0
	}
	avail := ra.cur.b[ra.off:ra.cur.n]
	if len(avail) < n {
		return avail, ra.cur.err
	}
	return avail[:n], nil
}

// take consumes the next n bytes and returns them: a slice of the buffer
// that holds them or, when they span two of the source's reads, of a
// buffer of its own (carry). They stay valid until the next take, Read
// or Peek. A stream that ends inside them gives io.ErrUnexpectedEOF; one
// that ends before them, io.EOF.
func (ra *readAhead) take(n int) ([]byte, error) {
	if err := ra.next(); err != nil {
		return nil, err
	}
	if ra.cur.n-ra.off >= n {
		b := ra.cur.b[ra.off : ra.off+n]
		ra.off += n
		return b, nil
	}
	if cap(ra.carry) < n {
		ra.carry = make([]byte, n)
	}
	c := ra.carry[:n]
	for got := 0; got < n; {
		if err := ra.next(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		k := copy(c[got:], ra.cur.b[ra.off:ra.cur.n])
		ra.off += k
		got += k
	}
	return c, nil
}

// Close stops the goroutine (once its current Read of the source returns)
// and frees its buffers to the collector. It does not close the source.
func (ra *readAhead) Close() {
	ra.stop.Do(func() { close(ra.done) })
}

// sizeHint says how many bytes r holds, where it can tell: a regular
// file's size from where it is (an *os.File, seen through the methods it
// has), or a reader's Len (bytes.Reader, strings.Reader).
func sizeHint(r io.Reader) (int64, bool) {
	switch v := r.(type) {
	case interface{ Len() int }:
		return int64(v.Len()), true
	case interface {
		Stat() (fs.FileInfo, error)
		io.Seeker
	}:
		st, err := v.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return 0, false
		}
		pos, err := v.Seek(0, io.SeekCurrent)
		if err != nil {
			return 0, false
		}
		return max(st.Size()-pos, 0), true
	}
	return 0, false
}
