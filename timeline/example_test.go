package timeline_test

import (
	"fmt"
	"os"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/timeline"
)

// Following a request across the legs: the Correlator takes the decoder's
// chunks and aligns each direction's bytes by offset, whatever the framing
// on each leg, in the order the bytes crossed them.
func ExampleCorrelator() {
	f, err := os.Open("../testdata/recordings/spdy-get.pcapng")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	corr := timeline.NewCorrelator()
	if _, err := decode.DecodeCapture(f, decode.Options{Chunks: corr.Chunk}, func(*decode.Event) {}); err != nil {
		fmt.Println(err)
		return
	}
	for _, h := range corr.Result() {
		fmt.Printf("request %s, %d bytes to the pod:\n", h.RequestID, h.ToPod.Bytes)
		for _, l := range h.ToPod.Legs {
			fmt.Println("  " + l.Leg)
		}
	}
	// Output:
	// request 0, 79 bytes to the pod:
	//   user→kubectl
	//   L1 client→apiserver
	//   L2 apiserver→kubelet
	//   L3 kubelet→runtime
	//   L4 runtime→app
}
