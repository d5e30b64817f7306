package decode_test

import (
	"fmt"
	"os"

	"github.com/pftap/pftap/decode"
)

// Decoding a recording: real kubectl port-forward and one curl through the
// lab, every leg captured (testdata/README.md says how it was made). The
// one request crosses three SPDY legs and is counted once.
func ExampleDecodeCapture() {
	f, err := os.Open("../testdata/recordings/spdy-get.pcapng")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	sum, err := decode.DecodeCapture(f, decode.Options{}, func(e *decode.Event) {
		if e.Kind == decode.KindRequest && e.Leg == "L3 kubelet→runtime" {
			fmt.Println(e.Leg+":", e.Text)
		}
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d upgrades, %d request seen on %d legs: %d B to the pod, %d B back\n",
		sum.Upgrades, sum.Requests, sum.RequestLegs, sum.BytesToPod, sum.BytesFromPod)
	// Output:
	// L3 kubelet→runtime: request 0 port 80: 79 B → pod, 399 B ← pod, 8.76ms, streams ready after 4.57ms, ok
	// 3 upgrades, 1 request seen on 3 legs: 79 B to the pod, 399 B back
}
