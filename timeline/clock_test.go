package timeline

import (
	"strings"
	"testing"
	"time"

	"github.com/pftap/pftap/leg"
)

// TestEstimateOffset: a request crosses L1 (local clock) and L3, L4 (a
// remote clock 250 ms ahead) with 300 µs per hop; the estimate lands on the
// offset, within the stated uncertainty, and shifting puts the legs back
// in chain order with the true latencies.
func TestEstimateOffset(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const offset = 250 * time.Millisecond
	hop := 300 * time.Microsecond
	// Remote by leg ID, whatever the legs are called.
	remote := func(id leg.ID) bool { return id == leg.L3 || id == leg.L4 }
	var hs []Hops
	for i := 0; i < 5; i++ {
		base := t0.Add(time.Duration(i) * time.Second)
		extra := time.Duration(i) * 40 * time.Microsecond // jitter: later samples are slower
		to := orderLegs([]LegTimes{
			{Leg: "L1", LegID: leg.L1, First: base, Last: base, Bytes: 10},
			{Leg: "L3", LegID: leg.L3, First: base.Add(hop + extra + offset), Last: base.Add(hop + extra + offset), Bytes: 10},
			{Leg: "L4", LegID: leg.L4, First: base.Add(2*hop + extra + offset), Last: base.Add(2*hop + extra + offset), Bytes: 10},
		}, true)
		back := base.Add(5 * time.Millisecond)
		from := orderLegs([]LegTimes{
			{Leg: "L4", LegID: leg.L4, First: back.Add(offset), Last: back.Add(offset), Bytes: 20},
			{Leg: "L3", LegID: leg.L3, First: back.Add(hop + offset), Last: back.Add(hop + offset), Bytes: 20},
			{Leg: "L1", LegID: leg.L1, First: back.Add(2*hop + extra), Last: back.Add(2*hop + extra), Bytes: 20},
		}, false)
		hs = append(hs, Hops{RequestID: "x", ToPod: to, FromPod: from})
	}
	est, ok := EstimateOffset(hs, remote)
	if !ok {
		t.Fatal("no estimate")
	}
	if d := est.Offset - offset; d < -est.Uncertainty || d > est.Uncertainty || est.Uncertainty > 400*time.Microsecond {
		t.Errorf("estimate %v ± %v, true offset %v", est.Offset, est.Uncertainty, offset)
	}
	if est.Samples != 10 {
		t.Errorf("%d samples, want 10", est.Samples)
	}
	shifted := ShiftLegs(hs, remote, est.Offset)
	for _, h := range shifted {
		if got := []string{h.ToPod.Legs[0].Leg, h.ToPod.Legs[1].Leg, h.ToPod.Legs[2].Leg}; strings.Join(got, ",") != "L1,L3,L4" {
			t.Errorf("towards the pod after shifting: %v", got)
		}
		for _, d := range append(h.ToPod.FirstByte, h.FromPod.FirstByte...) {
			if d < 0 || d > time.Millisecond {
				t.Errorf("a hop of %v after shifting", d)
			}
		}
	}
	if _, ok := EstimateOffset(hs[:0], remote); ok {
		t.Error("an estimate from nothing")
	}
}
