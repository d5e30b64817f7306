package spdy_test

import (
	"fmt"

	"github.com/pftap/pftap/decode/spdy"
)

// Bytes arrive in pieces from a capture: push them, then take out the frames
// that are complete.
func ExampleFramer_Next() {
	fr := spdy.NewFramer(nil)
	wire := []byte{
		0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1, // PING id=1
		0, 0, 0, 3, 1, 0, 0, 2, 'h', 'i', // DATA stream 3, FIN, "hi"
	}
	for _, chunk := range [][]byte{wire[:5], wire[5:15], wire[15:]} {
		fr.Write(chunk)
		for {
			f, off, err := fr.Next()
			if err != nil {
				fmt.Println("error:", err)
			}
			if f == nil {
				break
			}
			fmt.Printf("@%d %s\n", off, spdy.Summarize(f))
		}
	}
	// Output:
	// @0 PING id=1
	// @12 DATA stream=3 flags=FIN len=2 "hi"
}
