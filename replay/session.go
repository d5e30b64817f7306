package replay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/decode/packet"
	"github.com/pftap/pftap/decode/spdy"
	"github.com/pftap/pftap/leg"
)

// maxBody bounds the HTTP bodies (discovery, the pod) a Session keeps.
const maxBody = 16 << 20

// Session is a recording read into what a port-forward test needs: its
// legs, connections, plain API calls, port-forward sessions with every
// SPDY frame, and requests.
type Session struct {
	// Name is where the recording came from.
	Name string
	// Comment is the pcapng section comment (pftap writes the session's
	// description there).
	Comment string
	Legs    []Leg
	Conns   []*Conn
	// Exchanges are the HTTP request/response pairs of every connection,
	// upgrades included, in the order the requests were seen.
	Exchanges []*Exchange
	// PortForwards are the connections that switched to a port-forward
	// protocol (SPDY/3.1, or WebSocket with the SPDY tunnel), in order.
	PortForwards []*PortForward
	// Events are the decoded events at the default verbosity, as
	// `pftap decode` shows them.
	Events  []*decode.Event
	Summary decode.Summary
}

// Leg is one capture interface of the recording: its index, and the leg
// of the chain it is (ID, name, description and tap side, from the
// recording's leg marker).
type Leg struct {
	Index int
	leg.Leg
}

// Conn is one TCP connection.
type Conn struct {
	ID    int
	Leg   string
	Start time.Time
	// Endpoints is "client → server" as the decoder described it.
	Endpoints string
}

// Exchange is one HTTP request and its response. Credentials are
// redacted as pftap redacts them everywhere.
type Exchange struct {
	Conn   int
	Leg    string
	Time   time.Time
	Method string
	// Target is the request target: path and query.
	Target string
	Header http.Header
	Body   []byte
	// Answered is false when the recording has no response.
	Answered     bool
	ResponseTime time.Time
	Status       int
	RespHeader   http.Header
	RespBody     []byte
}

// Path is the target without its query.
func (x *Exchange) Path() string {
	p, _, _ := strings.Cut(x.Target, "?")
	return p
}

// IsUpgrade reports whether the request asked to switch protocols.
func (x *Exchange) IsUpgrade() bool {
	return x.Header.Get("Upgrade") != "" && strings.Contains(strings.ToLower(x.Header.Get("Connection")), "upgrade")
}

// IsWebSocket reports whether the request asked for a WebSocket.
func (x *Exchange) IsWebSocket() bool { return strings.EqualFold(x.Header.Get("Upgrade"), "websocket") }

// PortForward is one connection that carries a port-forward session: the
// upgrade that started it and every SPDY frame on it.
type PortForward struct {
	Conn int
	Leg  string
	// Upgrade is the exchange that switched protocols (status 101).
	Upgrade *Exchange
	// Namespace and Pod are parsed from the upgrade's path where it names
	// them (the apiserver's and the kubelet's paths do).
	Namespace, Pod string
	// APIServer is true when the path is the apiserver's
	// /api/v1/namespaces/NS/pods/NAME/portforward: the client's leg.
	APIServer bool
	// WebSocket is true for SPDY tunnelled in WebSocket binary messages.
	WebSocket bool
	// Protocol is the negotiated port-forward protocol
	// (X-Stream-Protocol-Version, or the WebSocket subprotocol).
	Protocol string
	Frames   []*Frame
	Requests []*Request
}

// Frame is one SPDY frame of a port-forward session.
type Frame struct {
	Time time.Time
	Dir  decode.Dir
	// Type is the SPDY frame type, as "SYN_STREAM", "DATA", "RST_STREAM".
	Type   string
	Stream uint32
	Fin    bool
	// Headers of SYN_STREAM, SYN_REPLY and HEADERS.
	Headers http.Header
	// Data of a DATA frame.
	Data []byte
	// Status names a RST_STREAM's or GOAWAY's status.
	Status string
	// PingID of a PING.
	PingID uint32
}

// Request is one port-forward request: the streams one forwarded
// connection used (an error stream and a data stream) and what crossed
// them.
type Request struct {
	// ID is the requestID header ("" for clients that send none).
	ID   string
	Port int
	// Streams are the SPDY stream IDs by stream type ("error", "data").
	Streams map[string]uint32
	// Frames are the frames of the request's streams, in order.
	Frames []*Frame
	// ToPod and FromPod are the data stream's bytes each way; Error is
	// what the server wrote on the error stream.
	ToPod, FromPod []byte
	Error          string
	Start          time.Time
}

// Open reads the recording at path. It needs no privileges: it only reads.
func Open(path string) (*Session, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, err := Read(f)
	if s != nil {
		s.Name = path
	}
	return s, err
}

// Read reads a recording (pcapng or pcap) from r. A damaged or truncated
// recording gives an error wrapping packet.ErrBadCapture together with the
// Session decoded up to the damage.
func Read(r io.Reader) (*Session, error) {
	rd, err := packet.NewReader(r)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	s := &Session{Comment: rd.SectionComment()}
	b := newBuilder(s)
	d := decode.NewDecoder(decode.Options{MaxBody: maxBody, Frames: b.frame}, b.event)
	known := -1
	var p packet.Packet
	for {
		if err = rd.Next(&p); err != nil {
			break
		}
		if n := len(rd.Interfaces()); n != known {
			d.SetInterfaces(rd.Interfaces())
			s.Legs = s.Legs[:0]
			for _, i := range rd.Interfaces() {
				s.Legs = append(s.Legs, Leg{Index: i.Index, Leg: leg.Leg{ID: i.Leg, Name: i.Name, Description: i.Description, At: i.At}})
			}
			known = n
		}
		d.Add(&p)
	}
	s.Summary = d.Finish()
	if errors.Is(err, io.EOF) {
		err = nil
	}
	b.finish()
	return s, err
}

// builder assembles a Session from the decoder's events and frames.
type builder struct {
	s     *Session
	open  map[int][]*Exchange // per connection: requests not yet answered
	pfs   map[int]*PortForward
	frame func(*decode.FrameInfo)
}

func newBuilder(s *Session) *builder {
	b := &builder{s: s, open: map[int][]*Exchange{}, pfs: map[int]*PortForward{}}
	b.frame = b.onFrame
	return b
}

func (b *builder) event(e *decode.Event) {
	s := b.s
	s.Events = append(s.Events, e)
	switch e.Kind {
	case decode.KindConn:
		s.Conns = append(s.Conns, &Conn{ID: e.Conn, Leg: e.Leg, Start: e.Time, Endpoints: strings.TrimPrefix(e.Text, "TCP ")})
	case decode.KindHTTPRequest:
		x := &Exchange{Conn: e.Conn, Leg: e.Leg, Time: e.Time, Method: e.Method, Target: e.Path, Header: toHeader(e.HTTPHeader), Body: []byte(e.Body)}
		s.Exchanges = append(s.Exchanges, x)
		b.open[e.Conn] = append(b.open[e.Conn], x)
	case decode.KindHTTPResponse:
		q := b.open[e.Conn]
		if len(q) == 0 {
			return
		}
		x := q[0]
		b.open[e.Conn] = q[1:]
		x.Answered, x.ResponseTime, x.Status = true, e.Time, e.Status
		x.RespHeader, x.RespBody = toHeader(e.HTTPHeader), []byte(e.Body)
		if e.Status == http.StatusSwitchingProtocols && x.IsUpgrade() {
			pf := &PortForward{Conn: e.Conn, Leg: e.Leg, Upgrade: x, WebSocket: x.IsWebSocket()}
			pf.Namespace, pf.Pod, pf.APIServer = parsePortForwardPath(x.Path())
			if pf.WebSocket {
				pf.Protocol = x.RespHeader.Get("Sec-Websocket-Protocol")
			} else {
				pf.Protocol = x.RespHeader.Get("X-Stream-Protocol-Version")
			}
			b.pfs[e.Conn] = pf
			s.PortForwards = append(s.PortForwards, pf)
		}
	}
}

func (b *builder) onFrame(fi *decode.FrameInfo) {
	pf := b.pfs[fi.Conn]
	if pf == nil {
		return
	}
	h := fi.Frame.Header()
	f := &Frame{Time: fi.Time, Dir: fi.Dir, Type: h.Type.String(), Stream: h.StreamID, Fin: h.Flags.Has(spdy.FlagFin)}
	switch fr := fi.Frame.(type) {
	case *spdy.DataFrame:
		f.Data = bytes.Clone(fr.Data)
	case *spdy.SynStreamFrame:
		f.Headers = spdyHeader(fr.Headers)
	case *spdy.SynReplyFrame:
		f.Headers = spdyHeader(fr.Headers)
	case *spdy.HeadersFrame:
		f.Headers = spdyHeader(fr.Headers)
	case *spdy.RstStreamFrame:
		f.Status = fr.Status.String()
	case *spdy.GoAwayFrame:
		f.Status = fr.Status.String()
	case *spdy.PingFrame:
		f.PingID = fr.ID
	}
	pf.Frames = append(pf.Frames, f)
}

// finish groups each port-forward's frames into requests.
func (b *builder) finish() {
	for _, pf := range b.s.PortForwards {
		pf.Requests = groupRequests(pf.Frames)
	}
}

// groupRequests pairs streams into requests by their requestID header, or,
// for clients that send none, an error stream with the data stream after it.
func groupRequests(frames []*Frame) []*Request {
	var reqs []*Request
	byID := map[string]*Request{}
	byStream := map[uint32]*Request{}
	var pending *Request // requestID-less: the last request missing a data stream
	for _, f := range frames {
		if f.Type == "SYN_STREAM" && f.Dir == decode.ToServer {
			typ := f.Headers.Get("streamType")
			id := f.Headers.Get("requestID")
			port, _ := strconv.Atoi(f.Headers.Get("port"))
			var r *Request
			switch {
			case id != "":
				r = byID[id]
			case pending != nil && pending.Streams[typ] == 0:
				r = pending
			}
			if r == nil {
				r = &Request{ID: id, Port: port, Streams: map[string]uint32{}, Start: f.Time}
				reqs = append(reqs, r)
				if id != "" {
					byID[id] = r
				}
			}
			pending = nil
			if id == "" && len(r.Streams) == 0 {
				pending = r
			}
			r.Streams[typ] = f.Stream
			byStream[f.Stream] = r
		}
		if f.Stream == 0 {
			continue
		}
		r := byStream[f.Stream]
		if r == nil {
			continue
		}
		r.Frames = append(r.Frames, f)
		if f.Type != "DATA" {
			continue
		}
		switch {
		case f.Stream == r.Streams["data"] && f.Dir == decode.ToServer:
			r.ToPod = append(r.ToPod, f.Data...)
		case f.Stream == r.Streams["data"]:
			r.FromPod = append(r.FromPod, f.Data...)
		case f.Stream == r.Streams["error"] && f.Dir == decode.FromServer:
			r.Error += string(f.Data)
		}
	}
	return reqs
}

// ClientLeg returns the port-forwards a client saw: those whose upgrade
// went to the apiserver's pods/portforward path. When the recording has
// none (a capture of a kubelet or a runtime alone, say), it returns those
// of the earliest port-forward's leg.
func (s *Session) ClientLeg() []*PortForward {
	var out []*PortForward
	for _, pf := range s.PortForwards {
		if pf.APIServer {
			out = append(out, pf)
		}
	}
	if len(out) > 0 || len(s.PortForwards) == 0 {
		return out
	}
	leg := s.PortForwards[0].Leg
	for _, pf := range s.PortForwards {
		if pf.Leg == leg {
			out = append(out, pf)
		}
	}
	return out
}

// Requests returns the requests of the client's leg, in the order they
// started.
func (s *Session) Requests() []*Request {
	var out []*Request
	for _, pf := range s.ClientLeg() {
		out = append(out, pf.Requests...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// Pod returns the namespace and name of the pod the client forwarded to.
func (s *Session) Pod() (namespace, name string, ok bool) {
	for _, pf := range s.ClientLeg() {
		if pf.Pod != "" {
			return pf.Namespace, pf.Pod, true
		}
	}
	return "", "", false
}

// Describe is a short human summary of the session.
func (s *Session) Describe() string {
	var b strings.Builder
	ns, pod, _ := s.Pod()
	cl := s.ClientLeg()
	proto := "none"
	if len(cl) > 0 {
		proto = "SPDY/3.1"
		if cl[0].WebSocket {
			proto = "WebSocket (" + cl[0].Protocol + ")"
		}
	}
	n := len(s.Requests())
	plural := "s"
	if n == 1 {
		plural = ""
	}
	fmt.Fprintf(&b, "%d legs, %d connections, %d port-forward sessions (%d on the client's leg, %s), %d request%s",
		len(s.Legs), len(s.Conns), len(s.PortForwards), len(cl), proto, n, plural)
	if pod != "" {
		fmt.Fprintf(&b, " to pod %s/%s", ns, pod)
	}
	return b.String()
}

// parsePortForwardPath recognises the apiserver's
// /api/v1/namespaces/NS/pods/NAME/portforward and the kubelet's
// /portForward/NS/NAME[/UID].
func parsePortForwardPath(p string) (ns, pod string, apiserver bool) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case len(parts) == 7 && parts[0] == "api" && parts[2] == "namespaces" && parts[4] == "pods" && parts[6] == "portforward":
		return parts[3], parts[5], true
	case len(parts) >= 3 && parts[0] == "portForward":
		return parts[1], parts[2], false
	}
	return "", "", false
}

func toHeader(m map[string]string) http.Header {
	h := http.Header{}
	for k, v := range m {
		h.Set(k, v)
	}
	return h
}

func spdyHeader(hs spdy.Headers) http.Header {
	h := http.Header{}
	for _, f := range hs {
		h.Add(f.Name, f.Value)
	}
	return h
}
