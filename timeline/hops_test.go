package timeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pftap/pftap/internal/synth"
	"github.com/pftap/pftap/leg"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/decode/packet"
)

func correlate(t *testing.T, name string) []Hops {
	t.Helper()
	f, err := os.Open("../testdata/recordings/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := NewCorrelator()
	c.Digests = true
	if _, err := decode.DecodeCapture(f, decode.Options{Chunks: c.Chunk}, func(*decode.Event) {}); err != nil {
		t.Fatal(err)
	}
	return c.Result()
}

// TestHopsOnRecordings follows every request of real lab recordings across
// all legs: each direction crosses every leg in chain order with the same
// byte count, hop latencies are not negative, and they add up to the end-to-
// end time.
func TestHopsOnRecordings(t *testing.T) {
	chain := []string{"user→kubectl", "L1 client→apiserver", "L2 apiserver→kubelet", "L3 kubelet→runtime", "L4 runtime→app"}
	socat := []string{"user→kubectl", "L1 client→apiserver", "L2 apiserver→kubelet", "L4 socat→app"}
	for name, tc := range map[string]struct {
		requests int
		legs     []string
	}{
		"spdy-get.pcapng":             {1, chain},
		"websocket-get.pcapng":        {1, chain},
		"spdy-concurrent.pcapng":      {5, chain},
		"websocket-concurrent.pcapng": {5, chain},
		"spdy-bulk-1mib.pcapng":       {1, chain},
		"websocket-fallback.pcapng":   {1, chain},
		"socat-get.pcapng":            {1, socat},
	} {
		t.Run(name, func(t *testing.T) {
			hs := correlate(t, name)
			if len(hs) != tc.requests {
				t.Fatalf("%d requests, want %d", len(hs), tc.requests)
			}
			for _, h := range hs {
				for i, d := range []DirHops{h.ToPod, h.FromPod} {
					want := tc.legs
					if i == 1 {
						want = reversed(tc.legs)
					}
					var got []string
					for _, l := range d.Legs {
						got = append(got, l.Leg)
						if l.Digest != d.Legs[0].Digest {
							t.Errorf("request %s dir %d: the bytes on %s differ from those on %s", h.RequestID, i, l.Leg, d.Legs[0].Leg)
						}
						if l.Bytes != d.Bytes {
							t.Errorf("request %s dir %d: %d bytes on %s, %d elsewhere", h.RequestID, i, l.Bytes, l.Leg, d.Bytes)
						}
					}
					if strings.Join(got, "|") != strings.Join(want, "|") {
						t.Errorf("request %s dir %d crossed %v, want %v", h.RequestID, i, got, want)
					}
					var sum, sumLast int64
					for k, hop := range d.FirstByte {
						if hop < 0 || d.LastByte[k] < 0 {
							t.Errorf("request %s dir %d: negative hop %v/%v", h.RequestID, i, hop, d.LastByte[k])
						}
						sum += int64(hop)
						sumLast += int64(d.LastByte[k])
					}
					if sum != int64(d.Total) || sumLast != int64(d.TotalLast) {
						t.Errorf("request %s dir %d: hops add up to %d, end to end %d", h.RequestID, i, sum, d.Total)
					}
				}
			}
		})
	}
}

func TestHopsWithoutPod(t *testing.T) {
	hs := correlate(t, "spdy-refused.pcapng")
	if len(hs) != 1 {
		t.Fatalf("%d requests", len(hs))
	}
	for _, l := range hs[0].ToPod.Legs {
		if strings.HasPrefix(l.Leg, "L4") {
			t.Errorf("a request to a port where nothing listens reached the pod's lo: %+v", l)
		}
	}
}

func reversed(s []string) []string {
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[len(s)-1-i]
	}
	return out
}

// TestMergedLegCorrelators correlates recordings with a Correlator per
// leg, each fed by that leg's decoder in a decode.LegSet and merged, as
// `pftap lab` does, and gets what one Correlator fed by one Decoder gets.
func TestMergedLegCorrelators(t *testing.T) {
	for _, name := range []string{"spdy-get.pcapng", "websocket-concurrent.pcapng", "spdy-bulk-1mib.pcapng", "socat-get.pcapng"} {
		t.Run(name, func(t *testing.T) {
			want := correlate(t, name)
			f, err := os.Open("../testdata/recordings/" + name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rd, err := packet.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			pkts, ifs, err := rd.ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			set := decode.NewLegSet(decode.Options{}, func(*decode.Event) {})
			var legs []*decode.LegDecoder
			var corrs []*Correlator
			for _, ifc := range ifs {
				c := NewCorrelator()
				c.Digests = true
				corrs = append(corrs, c)
				legs = append(legs, set.AddLeg(leg.Leg{ID: ifc.Leg, Name: ifc.Name}, c.Chunk, nil))
			}
			for i := range pkts {
				legs[pkts[i].Interface].Add(&pkts[i])
			}
			set.Finish()
			all := NewCorrelator()
			for i, c := range corrs {
				i := i
				all.Merge(c, func(_ string, local int) int { return set.Conn(i, local) })
			}
			got := all.Result()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("merged per-leg correlators:\n%+v\none correlator:\n%+v", got, want)
			}
			if len(got) == 0 {
				t.Error("no request correlated")
			}
		})
	}
}

// TestDataPiecesChangeNothing: the decoder passes a DATA frame that spans
// packets on in pieces (no byte copied to make it whole), unless a caller
// asks for whole frames (Options.Frames). Both ways give the same events,
// at every verbosity, and the same correlation, digests included, on every
// recording and on a synthetic bulk transfer.
func TestDataPiecesChangeNothing(t *testing.T) {
	names, err := filepath.Glob("../testdata/recordings/*.pcapng")
	if err != nil || len(names) == 0 {
		t.Fatal(names, err)
	}
	var bulk bytes.Buffer
	if _, err := synth.Write(&bulk, synth.Config{Bytes: 3 << 20, Requests: 3}); err != nil {
		t.Fatal(err)
	}
	inputs := map[string][]byte{"synthetic bulk": bulk.Bytes()}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		inputs[filepath.Base(n)] = b
	}
	run := func(data []byte, verbosity int, whole bool) (string, []Hops) {
		c := NewCorrelator()
		c.Digests = true
		opts := decode.Options{Verbosity: verbosity, Chunks: c.Chunk}
		if whole {
			opts.Frames = func(*decode.FrameInfo) {}
		}
		var events strings.Builder
		enc := json.NewEncoder(&events)
		if _, err := decode.DecodeCapture(bytes.NewReader(data), opts, func(e *decode.Event) { enc.Encode(e) }); err != nil {
			t.Fatal(err)
		}
		return events.String(), c.Result()
	}
	for name, data := range inputs {
		for _, v := range []int{0, 1, 2} {
			pe, ph := run(data, v, false)
			we, wh := run(data, v, true)
			if pe != we {
				t.Errorf("%s -v=%d: events differ with DATA in pieces:\n%s", name, v, firstDiff(pe, we))
			}
			if !reflect.DeepEqual(ph, wh) {
				t.Errorf("%s -v=%d: correlation differs with DATA in pieces:\n%+v\n%+v", name, v, ph, wh)
			}
			if v == 0 && !digested(ph) {
				t.Errorf("%s: no request correlated with a digest: %+v", name, ph)
			}
		}
	}
}

func digested(hops []Hops) bool {
	for _, h := range hops {
		for _, l := range append(h.ToPod.Legs, h.FromPod.Legs...) {
			if l.Digest != "" {
				return true
			}
		}
	}
	return false
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return "pieces: " + al[i] + "\nwhole:  " + bl[i]
		}
	}
	return fmt.Sprintf("%d lines against %d", len(al), len(bl))
}
