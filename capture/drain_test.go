package capture

import (
	"testing"

	"github.com/gopacket/gopacket"
)

// queueReader hands out its packets, then times out.
type queueReader struct{ pkts [][]byte }

func (q *queueReader) ReadPacket() ([]byte, gopacket.CaptureInfo, error) {
	if len(q.pkts) == 0 {
		return nil, gopacket.CaptureInfo{}, ErrTimeout
	}
	p := q.pkts[0]
	q.pkts = q.pkts[1:]
	return p, gopacket.CaptureInfo{CaptureLength: len(p), Length: len(p)}, nil
}

// TestDrainReadsWhatIsHeldAfterStop: a stop that comes before the reader
// got to the last packets does not lose them; then Drain returns.
func TestDrainReadsWhatIsHeldAfterStop(t *testing.T) {
	q := &queueReader{pkts: [][]byte{{1}, {2}, {3}}}
	stop := make(chan struct{})
	close(stop)
	var got int
	if err := Drain(q, stop, func([]byte, gopacket.CaptureInfo) { got++ }); err != nil || got != 3 {
		t.Fatalf("Drain after stop: %d packets, err %v; want the 3 held", got, err)
	}
}
