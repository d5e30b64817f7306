package websocket

import (
	"strings"
	"testing"
)

// FuzzDecoder pushes arbitrary bytes in odd chunks: no panic, and every frame
// returned accounts exactly for the bytes it consumed.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{0x82, 3, 'a', 'b', 'c'})
	f.Add([]byte{0x02, 0x81, 1, 2, 3, 4, 'a', 0x80, 1, 'b'})
	f.Add([]byte{0x88, 2, 3, 0xe8})
	f.Add([]byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDecoder()
		d.MaxFrameSize = 1 << 16
		var consumed int64
		for i := 0; i < len(b); i += 5 {
			d.Write(b[i:min(i+5, len(b))])
			for {
				fr, off, err := d.Next()
				if fr != nil {
					if off != consumed {
						t.Fatalf("frame at offset %d, %d consumed before", off, consumed)
					}
					consumed += int64(fr.WireLen())
					_ = Summarize(fr)
				}
				if fr == nil {
					_ = err
					break
				}
			}
		}
		if consumed > int64(len(b)) {
			t.Fatalf("consumed %d of %d bytes", consumed, len(b))
		}
	})
}

// FuzzParts: whatever the bytes and however they are pushed, Parts mode
// returns the frames (joined), errors and offsets the whole mode does.
func FuzzParts(f *testing.F) {
	f.Add([]byte{0x02, 0x83, 1, 2, 3, 4, 'a', 'b', 'c', 0x89, 0, 0x80, 1, 'd'}, uint8(1))
	f.Add([]byte{0x82, 126, 0, 200}, uint8(3))
	f.Add([]byte{0x80, 1, 'x'}, uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8) {
		c := int(chunk%16) + 1
		whole, parts, _ := wholeAndParts(b, c, chunk&0x80 != 0)
		// A frame cut short is held by the whole mode but partly
		// returned (and judged) in parts: then parts may say more after
		// what both said, and the bytes consumed differ.
		last := whole[len(whole)-1]
		cut := !strings.HasSuffix(last, "buffered 0")
		if len(parts) < len(whole) || !cut && len(parts) != len(whole) {
			t.Fatalf("whole %q\nparts %q", whole, parts)
		}
		for i := range len(whole) - 1 {
			if whole[i] != parts[i] {
				t.Fatalf("frame %d: whole %q, parts %q", i, whole[i], parts[i])
			}
		}
		if !cut && parts[len(parts)-1] != last {
			t.Fatalf("whole %q, parts %q", last, parts[len(parts)-1])
		}
	})
}
