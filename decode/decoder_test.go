package decode

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	ms "github.com/moby/spdystream/spdy"

	"github.com/pftap/pftap/decode/packet"
	"github.com/pftap/pftap/internal/secret"
)

const spdyUpgradeReq = "POST /api/v1/namespaces/team-a/pods/web-0/portforward HTTP/1.1\r\nHost: k8s:6443\r\n" +
	"Authorization: Bearer s3cr3t-t0ken\r\nCookie: session=abc\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n" +
	"X-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n\r\n"

const spdyUpgradeResp = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n" +
	"X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n"

// spdySession writes a port-forward session with one request on port 8080.
func spdySession(c *conv, seg int, reqID string) {
	cw, sw := newSPDYWriter(), newSPDYWriter()
	c.send(0, []byte(spdyUpgradeReq), seg)
	// The first client frame rides in the same segment as nothing else;
	// the server's first frame follows the 101 in one segment.
	c.send(1, append([]byte(spdyUpgradeResp), sw.frame(&ms.SettingsFrame{})...), seg)
	c.send(0, cw.frame(synStream(1, "error", "8080", reqID, true)), seg)
	c.send(1, sw.frame(&ms.SynReplyFrame{StreamId: 1}), seg)
	c.send(0, cw.frame(synStream(3, "data", "8080", reqID, false)), seg)
	c.send(1, sw.frame(&ms.SynReplyFrame{StreamId: 3}), seg)
	c.send(0, cw.frame(&ms.DataFrame{StreamId: 3, Data: []byte("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")}), seg)
	c.send(1, sw.frame(&ms.DataFrame{StreamId: 3, Data: []byte("HTTP/1.1 204 No Content\r\n\r\n")}), seg)
	c.send(0, cw.frame(&ms.PingFrame{Id: 1}), seg)
	c.send(1, sw.frame(&ms.PingFrame{Id: 1}), seg)
	c.send(0, cw.frame(&ms.DataFrame{StreamId: 3, Flags: ms.DataFlagFin}), seg)
	c.send(1, sw.frame(&ms.DataFrame{StreamId: 3, Flags: ms.DataFlagFin}), seg)
	c.send(1, sw.frame(&ms.DataFrame{StreamId: 1, Flags: ms.DataFlagFin}), seg)
	c.send(0, cw.frame(&ms.GoAwayFrame{}), seg)
	c.fin()
}

func TestSPDYSessionAnySegmentation(t *testing.T) {
	var first string
	for _, seg := range []int{1, 7, 1500} {
		c := newConv(6443)
		spdySession(c, seg, "0")
		evs, sum := decodeConv(t, Options{}, c)
		got := texts(evs)
		for _, want := range []string{
			"c>s POST /api/v1/namespaces/team-a/pods/web-0/portforward  upgrade=SPDY/3.1 stream-protocols=portforward.k8s.io  auth=Bearer <redacted>",
			"s>c 101 Switching Protocols  → SPDY/3.1 (portforward.k8s.io)",
			"c>s open error stream 1 → port 8080, request 0; half-closed by its opener at once",
			"c>s open data stream 3 → port 8080, request 0",
			`c>s request 0 stream 3 → pod "GET /healthz HTTP/1.1"  (42 bytes in frame)`,
			`s>c request 0 stream 3 ← pod "HTTP/1.1 204 No Content"  (27 bytes in frame)`,
			"c>s PING id=1 from client",
			"s>c PING id=1 echoed by server (round trip ",
			" request 0 port 8080: 42 B → pod, 27 B ← pod, ",
			"c>s GOAWAY from client: last good stream 0, status OK",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("segments of %d: missing %q in\n%s", seg, want, got)
			}
		}
		if strings.Contains(got, "s3cr3t") || strings.Contains(got, "session=abc") {
			t.Error("secret leaked into the text")
		}
		if sum.Requests != 1 || sum.Upgrades != 1 || sum.BytesToPod != 42 || sum.BytesFromPod != 27 || sum.DecodeErrors != 0 {
			t.Errorf("summary %+v", sum)
		}
		// Apart from times, the events do not depend on segmentation.
		norm := stripTimes(evs)
		if first == "" {
			first = norm
		} else if norm != first {
			t.Errorf("segments of %d decode differently", seg)
		}
	}
}

func stripTimes(evs []*Event) string {
	var b strings.Builder
	for _, e := range evs {
		if e.Kind == KindPing || e.Kind == KindRequest || e.Kind == KindConn || e.Kind == KindClose {
			// Round trips and durations vary, and so do byte totals:
			// spdystream writes headers from a map, in random order.
			continue
		}
		b.WriteString(afterDur.ReplaceAllString(e.Text, "") + "\n")
	}
	return b.String()
}

// afterDur matches the upgrade's duration in a 101's text.
var afterDur = regexp.MustCompile(`, after [0-9.]+(µs|ms|s)$`)

func TestRedaction(t *testing.T) {
	for _, show := range []bool{false, true} {
		c := newConv(6443)
		spdySession(c, 1500, "0")
		evs, _ := decodeConv(t, Options{ShowSecrets: show}, c)
		js, _ := json.Marshal(evs)
		leaked := strings.Contains(string(js), "s3cr3t-t0ken") && strings.Contains(string(js), "session=abc")
		if leaked != show {
			t.Errorf("show-secrets=%v: secrets in JSON = %v", show, leaked)
		}
	}
	ws := "GET /api/v1/namespaces/a/pods/b/portforward HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io, base64url.bearer.authorization.k8s.io.dG9rZW4\r\n\r\n"
	c := newConv(6443)
	c.send(0, []byte(ws), 1500)
	evs, _ := decodeConv(t, Options{}, c)
	if js, _ := json.Marshal(evs); strings.Contains(string(js), "dG9rZW4") {
		t.Errorf("bearer token in a WebSocket subprotocol leaked: %s", js)
	}
}

func TestNoRequestIDPairsByOrder(t *testing.T) {
	c := newConv(6443)
	spdySession(c, 1500, "")
	evs, sum := decodeConv(t, Options{}, c)
	got := texts(evs)
	if !strings.Contains(got, "open data stream 3 → port 8080, no requestID") || sum.Requests != 1 {
		t.Errorf("streams without requestID were not paired:\n%s", got)
	}
}

func TestWebSocketTunnel(t *testing.T) {
	c := newConv(6443)
	req := "GET /api/v1/namespaces/a/pods/b/portforward?ports=8080 HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n\r\n"
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n\r\n"
	c.send(0, []byte(req), 1500)
	c.send(1, []byte(resp), 1500)
	cw, sw := newSPDYWriter(), newSPDYWriter()
	// The client's writes become messages that do not match SPDY frames:
	// split every frame in two messages, and put two frames in one.
	syn1 := cw.frame(synStream(1, "error", "8080", "0", true))
	syn3 := cw.frame(synStream(3, "data", "8080", "0", false))
	data := cw.frame(&ms.DataFrame{StreamId: 3, Data: []byte("GET / HTTP/1.1\r\n\r\n")})
	c.send(0, wsFrame(2, syn1[:5], true), 1500)
	c.send(0, wsFrame(2, append(append([]byte{}, syn1[5:]...), syn3...), true), 1500)
	c.send(0, wsFrame(2, data, true), 1500)
	c.send(1, wsFrame(2, sw.frame(&ms.DataFrame{StreamId: 3, Data: []byte("HTTP/1.1 200 OK\r\n\r\n"), Flags: ms.DataFlagFin}), false), 1500)
	c.send(1, wsFrame(2, sw.frame(&ms.DataFrame{StreamId: 1, Flags: ms.DataFlagFin}), false), 1500)
	c.send(0, wsFrame(2, cw.frame(&ms.DataFrame{StreamId: 3, Flags: ms.DataFlagFin}), true), 1500)
	c.send(0, wsFrame(8, []byte{0x03, 0xe8}, true), 1500)
	c.fin()
	evs, sum := decodeConv(t, Options{}, c)
	got := texts(evs)
	for _, want := range []string{
		"→ WebSocket, subprotocol SPDY/3.1+portforward.k8s.io (SPDY/3.1 tunnelled in binary messages)",
		"open error stream 1 → port 8080, request 0",
		"open data stream 3 → port 8080, request 0",
		`request 0 stream 3 → pod "GET / HTTP/1.1"`,
		"WS close masked 1000 (normal closure)",
		"request 0 port 8080: 18 B → pod, 19 B ← pod",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if sum.DecodeErrors != 0 || sum.Requests != 1 {
		t.Errorf("summary %+v", sum)
	}
}

// TestWebSocketTunnelStreamed: a message carrying several SPDY frames,
// its bytes in several segments, gives each SPDY frame the time its own
// last byte came (client-go reads the tunnel as a stream and forwards a
// frame before the rest of the message has come), not the message's.
func TestWebSocketTunnelStreamed(t *testing.T) {
	c := newConv(6443)
	c.send(0, []byte("GET /api/v1/namespaces/a/pods/b/portforward HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n\r\n"), 1500)
	c.send(1, []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n\r\n"), 1500)
	cw, sw := newSPDYWriter(), newSPDYWriter()
	msg := append(cw.frame(synStream(1, "error", "8080", "0", true)), cw.frame(synStream(3, "data", "8080", "0", false))...)
	msg = append(msg, cw.frame(&ms.DataFrame{StreamId: 3, Data: []byte("GET / HTTP/1.1\r\n\r\n")})...)
	c.send(0, wsFrame(2, msg, true), 1500)
	first := sw.frame(&ms.DataFrame{StreamId: 3, Data: append([]byte("HTTP/1.1 200 OK\r\n\r\n"), make([]byte, 4000)...)})
	rest := sw.frame(&ms.DataFrame{StreamId: 3, Data: make([]byte, 4096), Flags: ms.DataFlagFin})
	// One message: the first frame ends in the third segment, the second
	// in the sixth.
	c.send(1, wsFrame(2, append(append([]byte{}, first...), rest...), false), 1500)
	c.fin()
	evs, sum := decodeConv(t, Options{Verbosity: 2}, c)
	var seg []time.Time // the server's data segments
	for _, p := range c.pkts {
		if p.Src == c.srv && len(p.Payload) > 0 {
			seg = append(seg, p.Time)
		}
	}
	var data []time.Time
	var ws *Event
	for _, e := range evs {
		if e.Kind == KindData && e.Dir == FromServer {
			data = append(data, e.Time)
		}
		if e.Kind == KindWS && e.Dir == FromServer {
			ws = e
		}
	}
	// seg[0] is the 101; the message's segments follow.
	if len(seg) != 7 || len(data) != 1 {
		t.Fatalf("%d server segments, %d data events ←:\n%s", len(seg), len(data), texts(evs))
	}
	if !data[0].Equal(seg[3]) {
		t.Errorf("the first SPDY frame ← stamped %v, its last byte came at %v (the message's at %v)", data[0], seg[3], seg[6])
	}
	if ws == nil || !ws.Time.Equal(seg[6]) || *ws.Length != len(first)+len(rest) || !strings.Contains(ws.Text, fmt.Sprintf("len=%d", len(first)+len(rest))) {
		t.Errorf("the message's event: %+v", ws)
	}
	if sum.DecodeErrors != 0 || sum.Requests != 1 {
		t.Errorf("summary %+v\n%s", sum, texts(evs))
	}
}

func TestChannelProtocol(t *testing.T) {
	for _, b64mode := range []bool{false, true} {
		proto := "v4.channel.k8s.io"
		if b64mode {
			proto = "v4.base64.channel.k8s.io"
		}
		c := newConv(10250)
		c.send(0, []byte("GET /portForward/team-a/web-0?ports=8080 HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: "+proto+"\r\n\r\n"), 1500)
		c.send(1, []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: "+proto+"\r\n\r\n"), 1500)
		msg := func(ch byte, p string) []byte {
			if b64mode {
				return wsFrame(1, []byte(string('0'+ch)+b64(p)), false)
			}
			return wsFrame(2, append([]byte{ch}, p...), false)
		}
		masked := func(f []byte) []byte { return f }
		c.send(1, msg(0, "\x90\x1f"), 1500) // port 8080, little endian
		c.send(1, msg(1, "\x90\x1f"), 1500)
		c.send(0, masked(msg(0, "GET / HTTP/1.1\r\n\r\n")), 1500)
		c.send(1, msg(0, "HTTP/1.1 200 OK\r\n\r\nhi"), 1500)
		c.send(1, msg(1, "boom"), 1500)
		c.fin()
		evs, sum := decodeConv(t, Options{}, c)
		got := texts(evs)
		for _, want := range []string{
			"channel 0 (data) announces port 8080",
			"channel 1 (error) announces port 8080",
			`→ pod "GET / HTTP/1.1"`,
			`← pod "HTTP/1.1 200 OK"`,
			`error channel: "boom"`,
			"port 8080: 18 B → pod, 21 B ← pod",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("%s: missing %q in\n%s", proto, want, got)
			}
		}
		if sum.RequestErrors != 1 {
			t.Errorf("%s: summary %+v", proto, sum)
		}
	}
}

func TestRefusedUpgradeThenKeepAlive(t *testing.T) {
	c := newConv(6443)
	c.send(0, []byte(strings.Replace(spdyUpgradeReq, "portforward.k8s.io", "v9.portforward.k8s.io", 1)), 1500)
	body := `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"unable to upgrade: no matching protocol","code":403}`
	c.send(1, []byte("HTTP/1.1 403 Forbidden\r\nX-Accepted-Stream-Protocol-Versions: portforward.k8s.io\r\nTransfer-Encoding: chunked\r\n\r\n"), 1500)
	c.send(1, []byte("10\r\n"+body[:16]+"\r\n"), 1500)
	c.send(1, []byte(strings.ToLower(strings.TrimPrefix(hex(len(body)-16), "0"))+"\r\n"+body[16:]+"\r\n0\r\n\r\n"), 1500)
	c.send(0, []byte("GET /api/v1/namespaces/team-a/pods/web-0 HTTP/1.1\r\nHost: k\r\n\r\n"), 1500)
	c.send(1, []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"), 1500)
	c.fin()
	evs, sum := decodeConv(t, Options{}, c)
	got := texts(evs)
	for _, want := range []string{
		`s>c 403 Forbidden  upgrade refused; server accepts portforward.k8s.io: "unable to upgrade: no matching protocol"`,
		"c>s GET /api/v1/namespaces/team-a/pods/web-0\n",
		"s>c 200 OK  (application/json, 2 bytes)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if sum.FailedUpgrade != 1 || sum.Upgrades != 0 || sum.DecodeErrors != 0 {
		t.Errorf("summary %+v", sum)
	}
}

func hex(n int) string {
	const digits = "0123456789abcdef"
	s := ""
	for n > 0 {
		s = string(digits[n%16]) + s
		n /= 16
	}
	return s
}

func TestHostileFrames(t *testing.T) {
	c := newConv(6443)
	c.send(0, []byte(spdyUpgradeReq), 1500)
	c.send(1, []byte(spdyUpgradeResp), 1500)
	// A DATA frame announcing 16 MiB - 1, then nothing like it.
	c.send(0, []byte{0, 0, 0, 3, 0, 0xff, 0xff, 0xff, 'x'}, 1500)
	// A SYN_STREAM with garbage for a header block.
	c.send(1, []byte{0x80, 3, 0, 1, 0, 0, 0, 16, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0x78, 0xbb, 0xde, 0xad, 0xbe, 0xef}, 1500)
	c.fin()
	evs, sum := decodeConv(t, Options{Verbosity: 2}, c)
	got := texts(evs)
	if !strings.Contains(got, "stream ends inside a SPDY frame") {
		t.Errorf("the unfinished 16 MiB frame was not reported:\n%s", got)
	}
	if sum.DecodeErrors != 1 || !strings.Contains(sum.FirstError, "SYN_STREAM") || !strings.Contains(sum.FirstError, "dictionary") {
		t.Errorf("summary %+v\n%s", sum, got)
	}
}

// TestLegBytesCountedOnce: a retransmitted segment and an overlapping one
// are counted apart from the leg's payload, which counts each byte once;
// a SYN answered by RST is one "refused" line.
func TestLegBytesCountedOnce(t *testing.T) {
	c := newConv(8080)
	c.send(0, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 10) // 27 bytes in 3 segments
	// The second segment again, and the last again with 4 bytes before it
	// (11 bytes, all delivered already).
	again := c.pkts[3]
	again.Time = c.t.Add(time.Millisecond)
	over := c.pkts[4]
	over.Seq -= 4
	over.Payload = append([]byte("\r\nHo"), over.Payload...)
	over.Time = again.Time.Add(time.Millisecond)
	c.pkts = append(c.pkts, again, over)
	c.t = over.Time
	c.send(1, []byte("HTTP/1.1 204 No Content\r\n\r\n"), 100)
	c.fin()
	_, sum := decodeConv(t, Options{}, c)
	var ls *LegSummary
	for _, l := range sum.Legs {
		ls = l
	}
	if ls == nil || ls.Bytes != 27+27 || ls.Retransmitted != 2 || ls.RetransmittedBytes != 10+11 {
		t.Errorf("leg summary %+v, want 54 bytes, 2 retransmitted segments, 21 bytes again", ls)
	}

	r := &conv{cli: netip.MustParseAddrPort("127.0.0.1:40000"), srv: netip.MustParseAddrPort("127.0.0.1:81"), t: time.Unix(1700000000, 0)}
	r.add(0, packet.SYN, nil)
	r.add(1, packet.RST|packet.ACK, nil)
	evs, _ := decodeConv(t, Options{}, r)
	got := texts(evs)
	if !strings.Contains(got, "(captured from its SYN)") || strings.Count(got, "refused: the SYN to port 81 was answered by RST") != 1 || strings.Contains(got, "closed (RST") {
		t.Errorf("refused connection:\n%s", got)
	}
}

// TestRedactionEveryHeader: every credential header of secret.Headers is
// hidden in the JSON (capture.RedactFrame hides the same list in files).
func TestRedactionEveryHeader(t *testing.T) {
	for _, h := range secret.Headers {
		req := "GET /healthz HTTP/1.1\r\nHost: x\r\n" + h + ": Scheme value-" + h + "-s3cret\r\n\r\n"
		c := newConv(6443)
		c.send(0, []byte(req), 1500)
		evs, _ := decodeConv(t, Options{}, c)
		if js, _ := json.Marshal(evs); strings.Contains(string(js), "-s3cret") {
			t.Errorf("%s leaked: %s", h, js)
		}
	}
}

// TestHeadResponseHasNoBody: the answer to a HEAD carries a Content-Length
// but no body, so the next response on the connection is its own. (The
// response side once never learned the requests' methods, and read the
// next response as the HEAD's body.)
func TestHeadResponseHasNoBody(t *testing.T) {
	c := newConv(80)
	c.send(0, []byte("HEAD /big HTTP/1.1\r\nHost: a\r\n\r\nGET /small HTTP/1.1\r\nHost: a\r\n\r\n"), 1500)
	c.send(1, []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"), 1500)
	c.send(1, []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"), 1500)
	c.fin()
	evs, sum := decodeConv(t, Options{}, c)
	var responses []string
	for _, e := range evs {
		if e.Kind == KindHTTPResponse {
			responses = append(responses, e.Text)
		}
	}
	if want := []string{"200 OK", "200 OK  (text/plain, 2 bytes)"}; fmt.Sprint(responses) != fmt.Sprint(want) {
		t.Errorf("responses %q, want %q\n%s", responses, want, texts(evs))
	}
	if sum.DecodeErrors != 0 || sum.Warnings != 0 {
		t.Errorf("summary %+v", sum)
	}
}
