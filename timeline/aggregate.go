package timeline

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pftap/pftap/decode"
)

// AggregateFrom is how many requests it takes for the text timeline to
// print the per-hop latencies as an aggregate rather than request by
// request (TextWriter.PerRequest keeps the list).
const AggregateFrom = 10

// Spread is a set of durations by its nearest-rank percentiles.
type Spread struct {
	N   int           `json:"n"`
	P50 time.Duration `json:"p50_ns"`
	P90 time.Duration `json:"p90_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

// NewSpread computes the spread of ds (which it sorts).
func NewSpread(ds []time.Duration) Spread {
	if len(ds) == 0 {
		return Spread{}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	at := func(p int) time.Duration {
		// nearest rank: the smallest value with at least p% at or below it
		k := (p*len(ds) + 99) / 100
		return ds[max(k, 1)-1]
	}
	return Spread{N: len(ds), P50: at(50), P90: at(90), P99: at(99), Max: ds[len(ds)-1]}
}

// HopSpread is one hop (from one leg to the next) in one direction, over
// every request that crossed both.
type HopSpread struct {
	Dir       string `json:"dir"` // "to_pod" or "from_pod"
	From      string `json:"from"`
	To        string `json:"to"`
	FirstByte Spread `json:"first_byte"`
	LastByte  Spread `json:"last_byte"`
}

// LegSetup is the stream setup cost on one leg (from a request's first
// SYN_STREAM to its data stream's SYN_REPLY), over its requests.
type LegSetup struct {
	Leg   string `json:"leg"`
	Setup Spread `json:"setup"`
}

// SlowRequest names one of the slowest requests end to end.
type SlowRequest struct {
	RequestID string `json:"request_id"`
	// What is the request's HTTP request line, when it has one.
	What  string        `json:"what,omitempty"`
	Dir   string        `json:"dir"`
	Total time.Duration `json:"total_ns"`
}

// Aggregate is many requests' latencies in a few lines.
type Aggregate struct {
	Requests int `json:"requests"`
	// Hops in the order the bytes cross them, towards the pod first.
	Hops []HopSpread `json:"hops"`
	// EndToEnd, per direction: the first byte's and the last byte's.
	ToPod       Spread        `json:"to_pod"`
	ToPodLast   Spread        `json:"to_pod_last"`
	FromPod     Spread        `json:"from_pod"`
	FromPodLast Spread        `json:"from_pod_last"`
	Setup       []LegSetup    `json:"setup,omitempty"`
	Slowest     []SlowRequest `json:"slowest"`
}

// Aggregates sums up the requests seen on more than one leg; setups are
// the setup costs by leg (decode's request events' SetupNS). Each
// direction's hops follow the chain as most requests crossed it, so that a
// request whose bytes were seen out of order on two legs (concurrent
// requests, clocks) counts in the same hop, with a negative latency.
func Aggregates(hs []Hops, setups map[string][]time.Duration) Aggregate {
	a := Aggregate{}
	var slow []SlowRequest
	var ends [4][]time.Duration
	dirs := []struct {
		name string
		get  func(Hops) DirHops
	}{{"to_pod", func(h Hops) DirHops { return h.ToPod }}, {"from_pod", func(h Hops) DirHops { return h.FromPod }}}
	for _, h := range hs {
		if len(h.ToPod.Legs) > 1 || len(h.FromPod.Legs) > 1 {
			a.Requests++
		}
	}
	for i, d := range dirs {
		// The chain as most requests crossed it.
		count := map[string]int{}
		best, bestN := "", 0
		for _, h := range hs {
			dh := d.get(h)
			if len(dh.Legs) < 2 {
				continue
			}
			var names []string
			for _, l := range dh.Legs {
				names = append(names, l.Leg)
			}
			k := strings.Join(names, "\x00")
			count[k]++
			if count[k] > bestN {
				best, bestN = k, count[k]
			}
		}
		if bestN == 0 {
			continue
		}
		chain := strings.Split(best, "\x00")
		first := make([][]time.Duration, len(chain)-1)
		last := make([][]time.Duration, len(chain)-1)
		for _, h := range hs {
			dh := d.get(h)
			if len(dh.Legs) < 2 {
				continue
			}
			at := map[string]LegTimes{}
			for _, l := range dh.Legs {
				at[l.Leg] = l
			}
			for k := 0; k+1 < len(chain); k++ {
				x, okx := at[chain[k]]
				y, oky := at[chain[k+1]]
				if okx && oky {
					first[k] = append(first[k], y.First.Sub(x.First))
					last[k] = append(last[k], y.Last.Sub(x.Last))
				}
			}
			ends[2*i] = append(ends[2*i], dh.Total)
			ends[2*i+1] = append(ends[2*i+1], dh.TotalLast)
			slow = append(slow, SlowRequest{RequestID: h.RequestID, What: h.What, Dir: d.name, Total: dh.Total})
		}
		for k := 0; k+1 < len(chain); k++ {
			a.Hops = append(a.Hops, HopSpread{Dir: d.name, From: chain[k], To: chain[k+1], FirstByte: NewSpread(first[k]), LastByte: NewSpread(last[k])})
		}
	}
	a.ToPod, a.ToPodLast, a.FromPod, a.FromPodLast = NewSpread(ends[0]), NewSpread(ends[1]), NewSpread(ends[2]), NewSpread(ends[3])
	legs := make([]string, 0, len(setups))
	for l := range setups {
		legs = append(legs, l)
	}
	sort.Strings(legs)
	for _, l := range legs {
		a.Setup = append(a.Setup, LegSetup{l, NewSpread(append([]time.Duration(nil), setups[l]...))})
	}
	sort.SliceStable(slow, func(i, j int) bool { return slow[i].Total > slow[j].Total })
	a.Slowest = slow[:min(3, len(slow))]
	return a
}

// setupCosts gathers the setup costs of request events, by leg.
type setupCosts map[string][]time.Duration

func (s setupCosts) note(e *decode.Event) {
	if e.Kind == decode.KindRequest && e.SetupNS != nil {
		s[e.Leg] = append(s[e.Leg], time.Duration(*e.SetupNS))
	}
}

// AggregateText prints an Aggregate in a few lines.
func AggregateText(a Aggregate, maskTimes bool) string {
	lat := fmtLatency
	if maskTimes {
		lat = func(time.Duration) string { return "T" }
	}
	sp := func(s Spread) string {
		return fmt.Sprintf("%s / %s / %s / %s", lat(s.P50), lat(s.P90), lat(s.P99), lat(s.Max))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nper-hop latency over %d requests (p50 / p90 / p99 / max; --per-request lists each request):\n", a.Requests)
	width := 0
	for _, h := range a.Hops {
		width = max(width, len([]rune(h.From+" → "+h.To)))
	}
	pad := func(s string) string { return s + strings.Repeat(" ", max(0, width-len([]rune(s)))) }
	arrow := map[string]string{"to_pod": "→ pod", "from_pod": "← pod"}
	for _, dir := range []string{"to_pod", "from_pod"} {
		for _, h := range a.Hops {
			if h.Dir == dir {
				fmt.Fprintf(&b, "  %s  %s  first byte %s   last byte %s\n", arrow[dir], pad(h.From+" → "+h.To), sp(h.FirstByte), sp(h.LastByte))
			}
		}
		end, endLast := a.ToPod, a.ToPodLast
		if dir == "from_pod" {
			end, endLast = a.FromPod, a.FromPodLast
		}
		if end.N > 0 {
			fmt.Fprintf(&b, "  %s  %s  first byte %s   last byte %s\n", arrow[dir], pad("end to end"), sp(end), sp(endLast))
		}
	}
	if len(a.Setup) > 0 {
		b.WriteString("stream setup (a request's first SYN_STREAM to its data stream's SYN_REPLY), per leg:\n")
		for _, s := range a.Setup {
			fmt.Fprintf(&b, "  %s  %s\n", pad(s.Leg), sp(s.Setup))
		}
	}
	if len(a.Slowest) > 0 {
		var parts []string
		for _, s := range a.Slowest {
			what := ""
			if s.What != "" {
				what = " " + s.What
			}
			parts = append(parts, fmt.Sprintf("request %s%s (%s %s end to end)", s.RequestID, what, arrow[s.Dir], lat(s.Total)))
		}
		fmt.Fprintf(&b, "slowest: %s\n", strings.Join(parts, ", "))
	}
	return b.String()
}
