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
	for _, n := range chainNodes {
		if !strings.Contains(page, ">"+strings.ReplaceAll(n, "(", "(")+"<") {
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
