package decode

import (
	"strings"
	"testing"
	"time"

	"github.com/pftap/pftap/leg"
)

// TestFindings drives the Diagnoser with the events each failure leaves
// on the legs, and checks the finding, its hop and its evidence.
func TestFindings(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	names := map[leg.ID]string{leg.Proxy: "proxy client→proxy", leg.User: "user→kubectl", leg.L1: "L1 client→apiserver", leg.L2: "L2 apiserver→kubelet", leg.L3: "L3 kubelet→runtime", leg.L4: "L4 runtime→app"}
	ev := func(ms int, id leg.ID, conn int, kind Kind, text string) *Event {
		return &Event{Time: at(ms), Kind: kind, Conn: conn, Leg: names[id], LegID: id, Text: text}
	}
	stream := func(e *Event, typ string, s uint32, req string) *Event {
		e.Type, e.Stream, e.RequestID = typ, ptr(s), ptr(req)
		return e
	}
	status := func(e *Event, code int, body string) *Event {
		e.Status, e.Body = code, body
		return e
	}
	reqEnd := func(e *Event, req string, setup bool) *Event {
		e.RequestID = ptr(req)
		if setup {
			e.SetupNS = ptr(int64(1e6))
		}
		return e
	}
	errText := "error forwarding port 81 to pod abc, uid : failed to connect to localhost:81 inside namespace \"abc\", IPv4: dial tcp 127.0.0.1:81: connect: connection refused IPv6: dial tcp [::1]:81: connect: connection refused"
	for _, tc := range []struct {
		name   string
		events []*Event
		want   string // name
		hop    string
		proof  int    // evidence items
		extra  string // in the explanation
	}{
		{"clean", []*Event{
			stream(ev(0, leg.L1, 2, KindStream, "open error stream 1"), "SYN_STREAM", 1, "0"),
			stream(ev(1, leg.L3, 5, KindStream, "open error stream 1"), "SYN_STREAM", 1, "0"),
			reqEnd(ev(9, leg.L1, 2, KindRequest, "request 0 ok"), "0", true),
			reqEnd(ev(9, leg.L3, 5, KindRequest, "request 0 ok"), "0", true),
		}, "", "", 0, ""},
		{"refused", []*Event{
			func() *Event {
				e := ev(3, leg.L3, 5, KindStreamError, "error stream says: ...")
				e.RequestID, e.Error = ptr("0"), ptr(errText)
				return e
			}(),
			func() *Event {
				e := ev(4, leg.L1, 2, KindStreamError, "error stream says: ...")
				e.RequestID, e.Error = ptr("0"), ptr(errText)
				return e
			}(),
			func() *Event {
				e := ev(2, leg.L4, 7, KindClose, "server→client closed (RST)")
				e.Reason = "RST"
				return e
			}(),
		}, "refused", "L4 runtime→app", 3, "nothing is listening on port 81"},
		{"sandbox gone", []*Event{
			func() *Event {
				e := ev(3, leg.L3, 5, KindStreamError, "error stream says: ...")
				e.RequestID, e.Error = ptr("1"), ptr(`failed to find sandbox "0123" in store: not found`)
				return e
			}(),
		}, "sandbox-gone", "the runtime", 1, "sandbox is gone"},
		{"rbac", []*Event{
			status(ev(1, leg.L1, 2, KindHTTPResponse, "403 Forbidden"), 403, `pods "nginx" is forbidden: User "u" cannot create resource "pods/portforward"`),
		}, "forbidden", "the apiserver, seen on L1 client→apiserver", 1, "create (and get) on pods/portforward"},
		{"websocket refused then SPDY", []*Event{
			status(ev(1, leg.L2, 3, KindHTTPResponse, "400 Bad Request"), 400, `query parameter "port" is required`),
			status(ev(2, leg.L1, 2, KindHTTPResponse, "400 Bad Request"), 400, `query parameter "port" is required`),
			status(ev(5, leg.L1, 6, KindHTTPResponse, "101 Switching Protocols  → SPDY/3.1"), 101, ""),
		}, "websocket-fallback", "the kubelet, seen on L2 apiserver→kubelet", 3, "400 from the kubelet"},
		{"stream unanswered", []*Event{
			stream(ev(0, leg.L1, 2, KindStream, "open error stream 1"), "SYN_STREAM", 1, "0"),
			stream(ev(1, leg.L2, 3, KindStream, "open error stream 1"), "SYN_STREAM", 1, "0"),
			stream(ev(1, leg.L3, 5, KindStream, "open error stream 1"), "SYN_STREAM", 1, "0"),
			ev(31000, leg.L1, 2, KindPing, "ping"),
		}, "stream-unanswered", "L3 kubelet→runtime", 3, "Timeout occurred"},
		{"stream eof", []*Event{
			stream(ev(0, leg.L1, 2, KindStream, "open data stream 3"), "SYN_STREAM", 3, "0"),
			stream(ev(1, leg.L2, 3, KindStream, "open data stream 3"), "SYN_STREAM", 3, "0"),
			func() *Event {
				e := ev(40, leg.L2, 3, KindClose, "server→client closed (FIN)")
				e.Dir, e.Reason = FromServer, "FIN"
				return e
			}(),
		}, "stream-eof", "L2 apiserver→kubelet", 3, "EOF"},
		{"runtime died", []*Event{
			stream(ev(0, leg.L3, 5, KindStream, "open data stream 3"), "SYN_STREAM", 3, "0"),
			reqEnd(ev(1, leg.L3, 5, KindRequest, "request 0 ..."), "0", true),
			func() *Event {
				e := ev(500, leg.L3, 5, KindClose, "client→server closed (RST)")
				e.Dir, e.Reason = ToServer, "RST"
				return e
			}(),
			func() *Event {
				e := ev(500, leg.L3, 5, KindClose, "server→client closed (RST)")
				e.Dir, e.Reason = FromServer, "RST"
				return e
			}(),
			func() *Event {
				e := ev(501, leg.L3, 8, KindClose, "server→client closed (FIN)")
				e.Dir, e.Reason = FromServer, "FIN"
				return e
			}(),
			func() *Event {
				e := ev(10500, leg.L2, 3, KindClose, "server→client closed (FIN)")
				e.Dir, e.Reason = FromServer, "FIN"
				return e
			}(),
		}, "runtime-died", "L3 kubelet→runtime", 3, "when the next ping crossed it"},
		{"kubelet done first", []*Event{
			func() *Event { e := ev(400, leg.L3, 5, KindGoAway, "GOAWAY from client"); e.Dir = ToServer; return e }(),
			func() *Event {
				e := ev(401, leg.L3, 5, KindClose, "client→server closed (FIN)")
				e.Dir, e.Reason = ToServer, "FIN"
				return e
			}(),
			func() *Event {
				e := ev(402, leg.L3, 5, KindClose, "server→client closed (FIN)")
				e.Dir, e.Reason = FromServer, "FIN"
				return e
			}(),
		}, "", "", 0, ""},
		{"client reset", []*Event{
			func() *Event {
				e := ev(10, leg.User, 9, KindClose, "client→server closed (RST)")
				e.Reason = "RST"
				return e
			}(),
			stream(ev(11, leg.L1, 2, KindStream, "RST_STREAM data stream 3"), "RST_STREAM", 3, "0"),
		}, "client-reset", "user→kubectl", 2, "connection reset by peer"},
		{"the forward resets the local connection", []*Event{
			func() *Event {
				e := ev(10, leg.User, 9, KindClose, "client→server closed (RST)")
				e.Reason, e.ResetBy = "RST", FromServer
				return e
			}(),
		}, "", "", 0, ""},
		{"client reset after the stream ended", []*Event{
			func() *Event {
				e := ev(10, leg.User, 9, KindClose, "client→server closed (RST)")
				e.Reason = "RST"
				return e
			}(),
		}, "client-reset", "user→kubectl", 1, "nothing was cut"},
		{"runtime died with a stream waiting", []*Event{
			stream(ev(0, leg.L1, 2, KindStream, "open error stream 1"), "SYN_STREAM", 1, "0"),
			stream(ev(1, leg.L3, 5, KindStream, "open error stream 1"), "SYN_STREAM", 1, "0"),
			func() *Event {
				e := ev(1000, leg.L3, 5, KindClose, "client→server closed (RST)")
				e.Dir, e.Reason = ToServer, "RST"
				return e
			}(),
			func() *Event {
				e := ev(6000, leg.L2, 3, KindClose, "server→client closed (FIN)")
				e.Dir, e.Reason = FromServer, "FIN"
				return e
			}(),
		}, "stream-eof", "L3 kubelet→runtime", 4, "streaming server closed 1 port-forward connection"},
		{"https to a plain-HTTP runtime", []*Event{
			func() *Event {
				e := ev(0, leg.L3, 5, KindWarning, "the client began TLS and the server answered in plain HTTP")
				e.Type, e.Dir = WarnTLSToPlain, FromServer
				return e
			}(),
			status(ev(0, leg.L3, 5, KindHTTPResponse, "400 Bad Request"), 400, "400 Bad Request"),
			func() *Event {
				e := ev(1, leg.L3, 5, KindClose, "server→client closed (FIN)")
				e.Dir, e.Reason = FromServer, "FIN"
				return e
			}(),
			status(ev(1, leg.L2, 3, KindHTTPResponse, "500 Internal Server Error"), 500, "error dialing backend: tls: first record does not look like a TLS handshake"),
			status(ev(2, leg.L1, 2, KindHTTPResponse, "500 Internal Server Error"), 500, "error dialing backend: tls: first record does not look like a TLS handshake"),
		}, "scheme-mismatch", "L3 kubelet→runtime", 4, "server gave HTTP response to HTTPS client"},
		{"https proxy, WebSocket never left the client", []*Event{
			func() *Event {
				e := ev(0, leg.Proxy, 1, KindHTTPRequest, "CONNECT 10.0.0.2:6443")
				e.Method = "CONNECT"
				return e
			}(),
			func() *Event {
				e := status(ev(1, leg.Proxy, 1, KindHTTPResponse, "200 Connection established"), 200, "")
				e.Protocol = "tunnel"
				return e
			}(),
			func() *Event {
				e := ev(5, leg.L1, 2, KindHTTPRequest, "POST /api/v1/namespaces/default/pods/nginx/portforward  upgrade=SPDY/3.1")
				e.Method, e.HTTPHeader = "POST", map[string]string{"upgrade": "SPDY/3.1", "user-agent": "kubectl/v1.32.4"}
				return e
			}(),
		}, "https-proxy", "the client's HTTPS proxy (proxy client→proxy)", 3, "proxy: unknown scheme: https"},
		{"proxy wants credentials", []*Event{
			func() *Event {
				e := ev(0, leg.Unknown, 1, KindHTTPRequest, "CONNECT 10.0.0.2:6443")
				e.Method, e.Leg = "CONNECT", "eth0"
				return e
			}(),
			func() *Event {
				e := status(ev(1, leg.Unknown, 1, KindHTTPResponse, "407 Proxy Authentication Required"), 407, "")
				e.Protocol, e.Leg = "tunnel refused", "eth0"
				return e
			}(),
		}, "proxy-refused", "the client's proxy, seen on eth0", 2, "credentials"},
		{"https to a plain-HTTP runtime, told by L1 only", []*Event{
			status(ev(2, leg.L1, 2, KindHTTPResponse, "500 Internal Server Error"), 500, "error dialing backend: tls: first record does not look like a TLS handshake"),
		}, "scheme-mismatch", "the apiserver's dial to the kubelet, or the kubelet's to the runtime (seen on L1 client→apiserver)", 1, "wrong scheme"},
		{"idle drop", []*Event{
			ev(0, leg.L1, 2, KindData, "request 0 data"),
			func() *Event {
				e := ev(61000, leg.L1, 2, KindClose, "server→client closed (RST)")
				e.Reason = "RST"
				return e
			}(),
		}, "idle-dropped", "L1 client→apiserver", 1, "60 s on ELB"},
		// A TLS leg has no events for its bytes: a connection that carried
		// 100 MiB/s until it was reset (a user's Ctrl-C, one direction
		// quiet all along) is no idle drop; its close says how long it
		// had been quiet.
		{"busy TLS leg reset", []*Event{
			ev(0, leg.L2Wire, 3, KindConn, "TCP 10.0.0.5:41618 → 10.0.0.6:10250"),
			func() *Event {
				e := ev(2700, leg.L2Wire, 3, KindClose, "client→server closed (RST) after 3587 bytes")
				e.Reason, e.IdleNS = "RST", ptr(int64(2*time.Millisecond))
				return e
			}(),
		}, "", "", 0, ""},
		{"quiet TLS leg reset", []*Event{
			ev(0, leg.L2Wire, 3, KindConn, "TCP 10.0.0.5:41618 → 10.0.0.6:10250"),
			func() *Event {
				e := ev(2700, leg.L2Wire, 3, KindClose, "client→server closed (RST) after 3587 bytes")
				e.Reason, e.IdleNS = "RST", ptr(int64(2650*time.Millisecond))
				return e
			}(),
		}, "idle-dropped", "", 1, "for 2.7s ("},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDiagnoser()
			for _, e := range tc.events {
				d.Note(e)
			}
			fs := d.Findings()
			if tc.want == "" {
				if len(fs) != 0 {
					t.Fatalf("findings in a clean session: %+v", fs)
				}
				return
			}
			if len(fs) != 1 {
				t.Fatalf("%d findings, want 1 %s: %+v", len(fs), tc.want, fs)
			}
			f := fs[0]
			if tc.hop == "" {
				tc.hop = f.Evidence[0].Leg
			}
			if f.Name != tc.want || f.Hop != tc.hop || len(f.Evidence) != tc.proof || !strings.Contains(f.Explanation, tc.extra) {
				t.Errorf("finding %+v\nwant %s at %q with %d evidence, explanation with %q", f, tc.want, tc.hop, tc.proof, tc.extra)
			}
			for i := 1; i < len(f.Evidence); i++ {
				if f.Evidence[i].Time.Before(f.Evidence[i-1].Time) {
					t.Errorf("evidence out of order: %+v", f.Evidence)
				}
			}
		})
	}
}

// TestFindingsOneLeg: with one leg captured, a finding says what it
// cannot tell.
func TestFindingsOneLeg(t *testing.T) {
	d := NewDiagnoser()
	d.Note(&Event{Time: time.Now(), Kind: KindHTTPResponse, Conn: 1, Leg: "L1 client→apiserver", LegID: leg.L1, Status: 403, Text: "403 Forbidden", Body: "cannot create resource \"pods/portforward\""})
	fs := d.Findings()
	if len(fs) != 1 || !strings.Contains(fs[0].Explanation, "only L1 client→apiserver was captured") {
		t.Errorf("%+v", fs)
	}
}

// TestRefineRefused: what listened in the pod tells a refused dial apart.
func TestRefineRefused(t *testing.T) {
	msg := `error forwarding port 8081 to pod x, uid : failed to connect to localhost:8081 inside namespace "x", IPv4: dial tcp 127.0.0.1:8081: connect: connection refused`
	e := &Event{Kind: KindStreamError, Error: &msg, Port: 8081}
	why := Diagnose(e)
	for _, tc := range []struct {
		listeners []string
		want      string
	}{
		{[]string{"127.0.0.1:80", "10.250.0.10:8081"}, "the app listens on 10.250.0.10:8081: the pod's IP only, not localhost"},
		{[]string{"0.0.0.0:80", "[::]:443"}, "nothing listens on port 8081 in the pod (it listens on: 80, 443)"},
		{[]string{"0.0.0.0:8081"}, "the app had not started yet"},
	} {
		if got := RefineRefused(why, e, tc.listeners); !strings.Contains(got, tc.want) {
			t.Errorf("listeners %v: %q, want it to say %q", tc.listeners, got, tc.want)
		}
	}
}

// TestFindingsFromClientLog: with no local leg tapped (trace), the
// client's own report of a local reset names the failure, and says whether
// the forward reset the stream or let the pod's answer run on; a reset
// the kubelet sent on L3 in its teardown is no runtime death.
func TestFindingsFromClientLog(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	reset := "Error copying from local connection to remote stream: writeto tcp4 127.0.0.1:1->127.0.0.1:2: read tcp4 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"
	unfinished := &Event{Time: at(400), Kind: KindRequest, Leg: "L1 client→apiserver", LegID: leg.L1, Conn: 2, RequestID: ptr("0"),
		BytesFromPod: ptr(int64(54072830)), Text: "request 0 port 80: 93 B → pod, 51.6 MiB ← pod, unfinished: connection closed"}
	rst := &Event{Time: at(12), Kind: KindStream, Leg: "L1 client→apiserver", LegID: leg.L1, Conn: 2, Type: "RST_STREAM", Stream: ptr(uint32(3)), RequestID: ptr("0"), Text: "RST_STREAM data stream 3 by client: CANCEL"}
	kubeletRST := &Event{Time: at(401), Kind: KindClose, Leg: "L3 kubelet→runtime", LegID: leg.L3, Conn: 4, Dir: ToServer, Reason: "RST", ResetBy: ToServer, Text: "client→server closed (RST from the client)"}
	for _, tc := range []struct {
		name   string
		client []string
		events []*Event
		want   string
		proof  int
		extra  string
	}{
		{"reset, the answer runs on", []string{reset}, []*Event{unfinished, kubeletRST}, "client-reset", 2, "no RST_STREAM followed"},
		{"reset, the stream reset", []string{reset}, []*Event{rst, unfinished}, "client-reset", 2, "client's own word"},
		{"another client error", []string{"Error creating forwarding stream: Timeout occurred"}, []*Event{kubeletRST}, "", 0, ""},
		{"the kubelet's teardown reset", nil, []*Event{kubeletRST}, "", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDiagnoser()
			for _, e := range tc.events {
				d.Note(e)
			}
			for _, l := range tc.client {
				d.NoteClient(at(10), "pftap", l)
			}
			fs := d.Findings()
			if tc.want == "" {
				if len(fs) != 0 {
					t.Fatalf("findings: %+v", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Name != tc.want || len(fs[0].Evidence) != tc.proof || !strings.Contains(fs[0].Explanation, tc.extra) ||
				fs[0].Hop != "the local connection" || fs[0].Evidence[0].Leg != "client-go (pftap)" {
				t.Fatalf("findings %+v, want one %s with %d evidence and %q", fs, tc.want, tc.proof, tc.extra)
			}
		})
	}
}
