package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
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

// hopRank is a leg's place on the way to the pod, for checking that an
// order is one bytes can cross: the wire and the kubelet's side of L2 are
// one hop (tapped microseconds apart).
func hopRank(id string) int {
	switch id {
	case "user":
		return 0
	case "proxy":
		return 1
	case "L1":
		return 2
	case "L2", "L2-wire":
		return 3
	case "L3":
		return 4
	case "L4":
		return 5
	case "witness":
		return 6
	}
	return -1
}

// TestLabConcurrentHopsPossible: 80 identical GETs, 20 at a time, with
// both clients: every request's legs, each direction, are in an order the
// bytes can cross (towards the pod down the chain, back up it), every
// request is followed over every leg (the user's and the pod's lo
// included), and no connection of the user's leg or the pod's lo is given
// to two requests. Identical payloads cannot tell the requests apart;
// causality both ways must.
func TestLabConcurrentHopsPossible(t *testing.T) {
	needRootCmd(t)
	for _, client := range []string{"pftap", "kubectl"} {
		t.Run(client, func(t *testing.T) {
			ios, out, errOut := testIO()
			reqs := make([]string, 80)
			for i := range reqs {
				reqs[i] = "GET /"
			}
			if err := labRun(&LabRunOptions{IO: ios, Runtime: "cri-streaming", App: "builtin", Client: client, Requests: reqs, Concurrency: 20, JSON: true}); err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			type legTimes struct {
				Leg   string
				LegID string `json:"leg_id"`
				Conn  int
			}
			type dirHops struct{ Legs []legTimes }
			n, bad := 0, 0
			used := map[string]string{}
			sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				if !strings.Contains(sc.Text(), `"kind":"hops"`) {
					continue
				}
				var h struct {
					RequestID string  `json:"request_id"`
					ToPod     dirHops `json:"to_pod"`
					FromPod   dirHops `json:"from_pod"`
				}
				if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
					t.Fatal(err)
				}
				n++
				for d, dh := range []dirHops{h.ToPod, h.FromPod} {
					var names []string
					prev := -1
					for i, l := range dh.Legs {
						names = append(names, l.LegID)
						r := hopRank(l.LegID)
						if r < 0 {
							t.Errorf("request %s: leg %q has no ID", h.RequestID, l.Leg)
						}
						if i > 0 && (d == 0 && r < prev || d == 1 && r > prev) {
							bad++
							t.Errorf("request %s %s: legs %v: an order bytes cannot cross", h.RequestID, []string{"→ pod", "← pod"}[d], names)
							break
						}
						prev = r
						if (l.LegID == "user" || l.LegID == "L4") && d == 0 {
							k := l.LegID + fmt.Sprint(l.Conn)
							if other, ok := used[k]; ok && other != h.RequestID {
								t.Errorf("%s conn %d given to requests %s and %s", l.Leg, l.Conn, other, h.RequestID)
							}
							used[k] = h.RequestID
						}
					}
					if want := 6; len(dh.Legs) < want-1 {
						t.Errorf("request %s %s: %d legs %v, want every leg", h.RequestID, []string{"→ pod", "← pod"}[d], len(dh.Legs), names)
					}
				}
			}
			if n != 80 {
				t.Errorf("%d requests followed, want 80", n)
			}
			t.Logf("%s: %d requests, %d directions in an impossible order", client, n, bad)
		})
	}
}
