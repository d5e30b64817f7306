package websocket

import "testing"

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
