package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"
)

// spreadJSON is an aggregate's spread as --json writes it.
type spreadJSON struct {
	N   int
	P50 time.Duration `json:"p50_ns"`
	P90 time.Duration `json:"p90_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

// TestLabAggregate: many requests through one lab are summed up in a few
// lines (p50/p90/p99/max per hop and end to end, the setup costs, the
// slowest named) instead of two lines each; --json carries the same as one
// aggregate object, whose figures equal those computed here from its own
// per-request hops objects.
func TestLabAggregate(t *testing.T) {
	needRootCmd(t)
	const n = 40
	reqs := make([]string, n)
	for i := range reqs {
		reqs[i] = "GET /bytes?n=3000"
	}
	ios, out, errOut := testIO()
	if err := labRun(&LabRunOptions{IO: ios, Runtime: "cri-streaming", App: "builtin", Client: "pftap", Requests: reqs, Concurrency: 10, JSON: true}); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	type legTimes struct {
		Leg   string
		First time.Time
	}
	type dirHops struct {
		Legs  []legTimes
		Total time.Duration `json:"total_ns"`
	}
	type spread struct {
		N                  int
		P50, P90, P99, Max time.Duration
	}
	var hops []struct{ ToPod, FromPod dirHops }
	var agg struct {
		Requests int
		Hops     []struct {
			Dir, From, To string
			FirstByte     spreadJSON `json:"first_byte"`
		}
		ToPod   spreadJSON `json:"to_pod"`
		Setup   []struct{ Leg string }
		Slowest []struct {
			RequestID string        `json:"request_id"`
			Total     time.Duration `json:"total_ns"`
		}
	}
	aggregates := 0
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var k struct{ Kind string }
		json.Unmarshal(sc.Bytes(), &k)
		switch k.Kind {
		case "hops":
			var h struct {
				ToPod   dirHops `json:"to_pod"`
				FromPod dirHops `json:"from_pod"`
			}
			json.Unmarshal(sc.Bytes(), &h)
			hops = append(hops, struct{ ToPod, FromPod dirHops }{h.ToPod, h.FromPod})
		case "aggregate":
			aggregates++
			if err := json.Unmarshal(sc.Bytes(), &agg); err != nil {
				t.Fatal(err)
			}
		}
	}
	if aggregates != 1 || agg.Requests != n || len(hops) != n {
		t.Fatalf("%d aggregate objects for %d requests, %d hops objects (want 1, %d, %d)", aggregates, agg.Requests, len(hops), n, n)
	}
	nearest := func(ds []time.Duration) spread {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		p := func(q float64) time.Duration {
			i := int(q*float64(len(ds))+0.999999) - 1
			return ds[max(i, 0)]
		}
		return spread{len(ds), p(0.50), p(0.90), p(0.99), ds[len(ds)-1]}
	}
	var totals []time.Duration
	for _, h := range hops {
		totals = append(totals, h.ToPod.Total)
	}
	if got, want := (spread{agg.ToPod.N, agg.ToPod.P50, agg.ToPod.P90, agg.ToPod.P99, agg.ToPod.Max}), nearest(totals); got != want {
		t.Errorf("end to end towards the pod: aggregate %+v, from the hops objects %+v", got, want)
	}
	for _, hop := range agg.Hops {
		var ds []time.Duration
		for _, h := range hops {
			dh := h.ToPod
			if hop.Dir == "from_pod" {
				dh = h.FromPod
			}
			var from, to *legTimes
			for i := range dh.Legs {
				switch dh.Legs[i].Leg {
				case hop.From:
					from = &dh.Legs[i]
				case hop.To:
					to = &dh.Legs[i]
				}
			}
			if from != nil && to != nil {
				ds = append(ds, to.First.Sub(from.First))
			}
		}
		fb := hop.FirstByte
		if got, want := (spread{fb.N, fb.P50, fb.P90, fb.P99, fb.Max}), nearest(ds); got != want {
			t.Errorf("%s %s → %s: aggregate %+v, from the hops objects %+v", hop.Dir, hop.From, hop.To, got, want)
		}
	}
	if len(agg.Hops) < 6 || len(agg.Setup) < 3 || len(agg.Slowest) != 3 || agg.Slowest[0].Total != nearest(totals).Max {
		t.Errorf("aggregate: %d hops, %d setup legs, slowest %+v", len(agg.Hops), len(agg.Setup), agg.Slowest)
	}

	// The text: a few lines, no per-request pairs of lines.
	ios, out, errOut = testIO()
	if err := labRun(&LabRunOptions{IO: ios, Runtime: "cri-streaming", App: "builtin", Client: "pftap", Requests: reqs, Concurrency: 10, NoColor: true}); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	text := out.String()
	i, j := strings.Index(text, "per-hop latency over 40 requests"), strings.Index(text, "\nslowest: request ")
	if i < 0 || j < 0 || strings.Count(text[i:j], "\n") > 20 || strings.Contains(text, "  request 0  → pod") {
		t.Errorf("the aggregate text:\n%s", text[max(i, 0):])
	}
}
