package spool

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"math/rand/v2"
	"os"
	"testing"
)

// TestRoundTrip writes parts of every size across chunk edges, in a disk
// directory and in a tmpfs one (which may refuse O_DIRECT), reads it all
// back twice, and checks that nothing is left in the directory.
func TestRoundTrip(t *testing.T) {
	dirs := []string{t.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "pftap-spool-test-")
		if err == nil {
			defer os.RemoveAll(d)
			dirs = append(dirs, d)
		}
	}
	for _, dir := range dirs {
		f, err := New(dir, 8192, 3)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		var want bytes.Buffer
		for i := 0; i < 500; i++ {
			a := make([]byte, rng.IntN(20000))
			b := make([]byte, rng.IntN(50))
			for j := range a {
				a[j] = byte(rng.Uint32())
			}
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			if err := f.Write(a, b); err != nil {
				t.Fatal(err)
			}
			want.Write(a)
			want.Write(b)
		}
		if f.Size() != int64(want.Len()) {
			t.Fatalf("%s: size %d, wrote %d", dir, f.Size(), want.Len())
		}
		for pass := 0; pass < 3; pass++ {
			r, err := f.Reader()
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("%s pass %d: read %d bytes, not what was written (%d bytes); direct=%v", dir, pass, len(got), want.Len(), f.Direct())
			}
		}
		if err := f.Write([]byte("late")); !errors.Is(err, ErrSealed) {
			t.Errorf("write after read: %v, want ErrSealed", err)
		}
		t.Logf("%s: %d bytes, O_DIRECT %v", dir, want.Len(), f.Direct())
		f.Close()
		f.Close()
		left, _ := os.ReadDir(dir)
		if len(left) != 0 {
			t.Errorf("%s: left %d files behind", dir, len(left))
		}
	}
}

// TestEmpty: a spool nothing was written to reads as empty.
func TestEmpty(t *testing.T) {
	f, err := New(t.TempDir(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := f.Reader()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || len(b) != 0 {
		t.Fatalf("read %d bytes, %v", len(b), err)
	}
}

// TestManyReaders: more readers at once than the spool has chunks.
func TestManyReaders(t *testing.T) {
	f, err := New(t.TempDir(), 4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := bytes.Repeat([]byte("0123456789"), 3000)
	f.Write(data)
	var rs []io.Reader
	for i := 0; i < 5; i++ {
		r, err := f.Reader()
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	for i, r := range rs {
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("reader %d: %d bytes, %v", i, len(got), err)
		}
	}
}

// BenchmarkWrite: what a writer pays per byte (a copy into a reused
// chunk; the disk works in the spool's goroutine).
func BenchmarkWrite(b *testing.B) {
	f, err := New(b.TempDir(), *benchChunk, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	p := make([]byte, 64<<10)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if err := f.Write(p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(map[bool]float64{false: 0, true: 1}[f.Direct()], "direct")
}

var benchChunk = flag.Int("chunk", DefaultChunk, "BenchmarkWrite: chunk size")

// TestCloseWithReaderMidway: a reader left half-way does not keep its
// read-ahead (or Close) waiting.
func TestCloseWithReaderMidway(t *testing.T) {
	f, err := New(t.TempDir(), 4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(bytes.Repeat([]byte{7}, 100000))
	r, err := f.Reader()
	if err != nil {
		t.Fatal(err)
	}
	var b [10]byte
	if _, err := io.ReadFull(r, b[:]); err != nil || b[9] != 7 {
		t.Fatalf("read %v, %v", b, err)
	}
	f.Close()
}
