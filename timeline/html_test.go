package timeline

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pftap/pftap/decode"
)

func TestHTMLFromRecording(t *testing.T) {
	f, err := os.Open("../testdata/recordings/websocket-get.pcapng")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []*decode.Event
	c := NewCorrelator()
	if _, err := decode.DecodeCapture(f, decode.Options{Chunks: c.Chunk}, func(e *decode.Event) { evs = append(evs, e) }); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteHTML(&b, "test <session>", evs, c.Result()); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	drawn := 0
	for _, e := range evs {
		if _, _, ok := legSpan(e.LegID, hasNoL3(evs)); ok && e.Kind != decode.KindConn && e.Kind != decode.KindTCP {
			drawn++
		}
	}
	if got := strings.Count(page, `<g class="ev `); got != drawn || drawn < 30 {
		t.Errorf("%d arrows for %d events", got, drawn)
	}
	// The lanes say what ran: kubectl (the user's leg is curl's to it)
	// and the runtime's streaming server.
	for _, n := range []string{"you (the requests)", "kubectl", "apiserver", "kubelet", "runtime streaming server", "app (pod lo)"} {
		if !strings.Contains(page, ">"+n+"<") {
			t.Errorf("no lane for %s", n)
		}
	}
	for _, want := range []string{"test &lt;session&gt;", "Per-hop latency", "open data stream 3 → port 80, request 0", "http://", "<title>"} {
		if want == "http://" {
			if strings.Contains(page, `src="http`) || strings.Contains(page, `href="http`) {
				t.Error("the page loads something from the network")
			}
			continue
		}
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestHTMLEscapesHostileText(t *testing.T) {
	e := &decode.Event{Time: time.Unix(1, 0), Kind: decode.KindData, Leg: "L4 runtime→app", Dir: decode.ToServer,
		Text: `→ pod "<script>alert(1)</script>"`}
	var b bytes.Buffer
	WriteHTML(&b, "x", []*decode.Event{e}, nil)
	if strings.Contains(b.String(), "<script>") {
		t.Error("event text reached the page unescaped")
	}
}

// TestHTMLLanesFoldsLegend: the lanes are named after the session's legs
// (pftap's client, socat as the runtime), a scenario line and a legend head
// the page, and consecutive DATA frames of one stream are one band, listed
// below.
func TestHTMLLanesFoldsLegend(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	var evs []*decode.Event
	evs = append(evs, &decode.Event{Time: t0, Kind: decode.KindHTTPRequest, LegID: "user", Leg: "user→pftap", Dir: decode.ToServer, Text: "GET /"},
		&decode.Event{Time: t0, Kind: decode.KindHTTPRequest, LegID: "L4", Leg: "L4 socat→app", Dir: decode.ToServer, Text: "GET /"})
	stream, n := uint32(3), 32768
	for i := range 20 {
		evs = append(evs, &decode.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Kind: decode.KindSPDY, Type: "DATA", LegID: "L1",
			Leg: "L1 client→apiserver", Conn: 2, Dir: decode.FromServer, Stream: &stream, Length: &n, Text: "DATA stream=3 len=32768"})
	}
	evs = append(evs, &decode.Event{Time: t0.Add(30 * time.Millisecond), Kind: decode.KindRequest, LegID: "L1", Leg: "L1 client→apiserver", Conn: 2, Text: "request 0 ended"})
	var b bytes.Buffer
	if err := WriteHTMLPage(&b, HTMLPage{Title: "t", Scenario: "Kubernetes 1.23: the dockershim"}, evs, nil); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{">pftap (its client)<", ">socat (nsenter, by the kubelet)<", `class="scenario">Kubernetes 1.23: the dockershim<`,
		`class="legend"`, "ms since the first event", "20 DATA frames, 640.0 KiB, over 19.00ms", "1 folded bands of bulk frames"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if got := strings.Count(page, `<g class="ev `); got != 4 {
		t.Errorf("%d bands for 2 requests, 20 DATA frames of one stream and an end, want 4", got)
	}
}
