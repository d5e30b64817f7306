package timeline

import (
	"time"

	"github.com/pftap/pftap/leg"
)

// ClockOffset is an estimate of how far a remote machine's clock runs
// ahead of the local one, from requests seen on legs of both.
type ClockOffset struct {
	// Offset is remote minus local; Uncertainty bounds the error: the
	// true offset lies within Offset ± Uncertainty.
	Offset, Uncertainty time.Duration
	// Samples is how many request directions the estimate uses.
	Samples int
}

// EstimateOffset estimates the clock offset of the remote legs (remote
// reports, by leg ID, which legs were timed by the remote machine) against the local
// ones. Bytes towards the pod cross a local leg before a remote one, so
// remote-local times there bound the offset from above; bytes back cross
// a remote leg first, which bounds it from below. The estimate is the
// middle of the tightest bounds, as NTP does with one exchange. ok is false
// without a request seen on both kinds of legs in both directions.
func EstimateOffset(hs []Hops, remote func(leg.ID) bool) (ClockOffset, bool) {
	const none = time.Duration(1<<63 - 1)
	upper, lower := none, -none
	samples := 0
	for _, h := range hs {
		// Towards the pod: the last local leg, then the first remote one.
		if l, r, ok := pair(h.ToPod.Legs, remote, true); ok {
			upper = min(upper, r.Sub(l))
			samples++
		}
		// Back: the last remote leg, then the first local one.
		if l, r, ok := pair(h.FromPod.Legs, remote, false); ok {
			lower = max(lower, r.Sub(l))
			samples++
		}
	}
	if upper == none || lower == -none {
		return ClockOffset{}, false
	}
	mid := lower + (upper-lower)/2
	unc := (upper - lower) / 2
	if unc < 0 {
		unc = -unc
	}
	return ClockOffset{Offset: mid, Uncertainty: unc, Samples: samples}, true
}

// pair finds, in a direction's legs, the local leg's and the remote leg's
// first-byte times at the boundary the bytes cross: towards the pod the
// latest local leg and the earliest remote one; back the latest remote
// and the earliest local.
func pair(legs []LegTimes, remote func(leg.ID) bool, toPod bool) (local, rem time.Time, ok bool) {
	var haveL, haveR bool
	for _, l := range legs {
		switch {
		case remote(l.LegID):
			if !haveR || (toPod && l.First.Before(rem)) || (!toPod && l.First.After(rem)) {
				rem, haveR = l.First, true
			}
		default:
			if !haveL || (toPod && l.First.After(local)) || (!toPod && l.First.Before(local)) {
				local, haveL = l.First, true
			}
		}
	}
	return local, rem, haveL && haveR
}

// ShiftLegs moves the times of the remote legs back by offset (putting
// them on the local clock) and recomputes every hop.
func ShiftLegs(hs []Hops, remote func(leg.ID) bool, offset time.Duration) []Hops {
	out := make([]Hops, len(hs))
	for i, h := range hs {
		h.ToPod = shiftDir(h.ToPod, remote, offset, true)
		h.FromPod = shiftDir(h.FromPod, remote, offset, false)
		out[i] = h
	}
	return out
}

func shiftDir(d DirHops, remote func(leg.ID) bool, offset time.Duration, toPod bool) DirHops {
	legs := append([]LegTimes(nil), d.Legs...)
	for i := range legs {
		if remote(legs[i].LegID) {
			legs[i].First = legs[i].First.Add(-offset)
			legs[i].Last = legs[i].Last.Add(-offset)
		}
	}
	nd := orderLegs(legs, toPod)
	nd.Bytes = d.Bytes
	return nd
}
