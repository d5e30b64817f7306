package spdy

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzFramer reads arbitrary bytes both ways (ReadFrame from a reader, and
// Write/Next in small chunks): neither may panic, allocate from unchecked
// lengths, or disagree with the other.
func FuzzFramer(f *testing.F) {
	for _, seed := range [][]byte{
		{0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1},
		{0, 0, 0, 1, 1, 0, 0, 2, 'h', 'i'},
		{0x80, 3, 0, 1, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x38, 0xea},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pull := NewFramer(bytes.NewReader(b))
		pull.MaxFrameSize = 1 << 16
		var a []string
		for {
			fr, err := pull.ReadFrame()
			if fr != nil {
				a = append(a, Summarize(fr))
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF || errors.Is(err, ErrFrameTooLarge) {
				break
			}
			if err != nil && fr == nil {
				t.Fatalf("error without a frame that is not final: %v", err)
			}
		}
		push := NewFramer(nil)
		push.MaxFrameSize = 1 << 16
		var c []string
		for i := 0; i < len(b); i += 3 {
			push.Write(b[i:min(i+3, len(b))])
			for {
				fr, _, err := push.Next()
				if fr != nil {
					c = append(c, Summarize(fr))
				}
				if fr == nil && err == nil || errors.Is(err, ErrFrameTooLarge) {
					break
				}
			}
		}
		if len(a) != len(c) {
			t.Fatalf("pull read %d frames, push %d", len(a), len(c))
		}
		for i := range a {
			if a[i] != c[i] {
				t.Fatalf("frame %d: pull %q, push %q", i, a[i], c[i])
			}
		}
	})
}
