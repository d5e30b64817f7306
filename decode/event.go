package decode

import (
	"time"

	"github.com/pftap/pftap/leg"

	"github.com/pftap/pftap/decode/spdy"
)

// Kind is the kind of an Event.
type Kind string

// Event kinds. Verbosity 0 gives every kind but KindSPDY, KindWS and
// KindTCP; 1 adds KindSPDY; 2 adds KindWS and KindTCP.
const (
	KindConn         Kind = "conn"          // a TCP connection first seen
	KindHTTPRequest  Kind = "http-request"  // an HTTP/1.x request (the upgrade, or a plain API call)
	KindHTTPResponse Kind = "http-response" // its response: 101, or the failure
	KindStream       Kind = "stream"        // a port-forward stream opened, replied, half-closed or reset
	KindData         Kind = "data"          // what a data stream carries: HTTP lines, a preview
	KindStreamError  Kind = "error"         // text the server wrote on an error stream
	KindPing         Kind = "ping"          // a SPDY or WebSocket ping/pong
	KindGoAway       Kind = "goaway"        // SPDY GOAWAY
	KindRequest      Kind = "request"       // one port-forward request, summarised when it ends
	KindGap          Kind = "gap"           // bytes missing from the capture
	KindWarning      Kind = "warning"       // the capture does not allow full decoding
	KindDecodeError  Kind = "decode-error"  // bytes that break the protocol
	KindClose        Kind = "close"         // a TCP direction ended
	KindSPDY         Kind = "spdy"          // one SPDY frame (verbosity >= 1)
	KindWS           Kind = "ws"            // one WebSocket frame (verbosity >= 2)
	KindTCP          Kind = "tcp"           // one TCP segment (verbosity >= 2)
)

// Dir is the direction of an event on its connection.
type Dir string

// Directions: from the client (kubectl, the apiserver towards the kubelet...)
// to the server, that is towards the pod; and back.
const (
	ToServer   Dir = "c>s"
	FromServer Dir = "s>c"
)

// Event is one thing that crossed a connection, at the level a person
// debugging port-forward thinks in. Fields that do not apply to the kind
// are zero and left out of JSON.
type Event struct {
	Time time.Time `json:"ts"`
	Kind Kind      `json:"kind"`
	// Conn numbers the connection in the capture, from 1.
	Conn int `json:"conn"`
	// Leg is the capture interface's name (in pftap recordings, the leg),
	// and LegID the leg of the chain it is (stable whatever its name).
	Leg   string `json:"leg,omitempty"`
	LegID leg.ID `json:"leg_id,omitempty"`
	Dir   Dir    `json:"dir,omitempty"`
	// Offset is the byte offset of the event in its direction's stream
	// (the TCP stream, or the SPDY stream inside a WebSocket tunnel).
	Offset *int64 `json:"offset,omitempty"`
	// Text is the one-line human summary.
	Text string `json:"text"`
	// Diagnosis says what a failure means, in a sentence a person can act
	// on (see Diagnose): set on the failure events it can explain.
	Diagnosis string `json:"diagnosis,omitempty"`

	// SPDY frame fields (KindSPDY, and the frame behind KindStream).
	Type    string       `json:"type,omitempty"`
	Stream  *uint32      `json:"stream,omitempty"`
	Length  *int         `json:"length,omitempty"`
	Flags   *string      `json:"flags,omitempty"`
	Headers spdy.Headers `json:"headers,omitempty"`

	// HTTP fields.
	Method     string            `json:"method,omitempty"`
	Path       string            `json:"path,omitempty"`
	Namespace  string            `json:"namespace,omitempty"`
	Pod        string            `json:"pod,omitempty"`
	Status     int               `json:"status,omitempty"`
	Protocol   string            `json:"protocol,omitempty"`
	HTTPHeader map[string]string `json:"http_headers,omitempty"`
	// UpgradeBy, on a 101, is the hop that made it ("apiserver",
	// "kubelet", "runtime"), when a session's legs tell
	// (timeline.Upgrades).
	UpgradeBy string `json:"upgrade_by,omitempty"`
	Body      string `json:"body,omitempty"`

	// Port-forward fields.
	RequestID    *string `json:"request_id,omitempty"`
	StreamType   string  `json:"stream_type,omitempty"`
	Port         int     `json:"port,omitempty"`
	BytesToPod   *int64  `json:"bytes_to_pod,omitempty"`
	BytesFromPod *int64  `json:"bytes_from_pod,omitempty"`
	Error        *string `json:"error,omitempty"`
	Reason       string  `json:"reason,omitempty"`
	DurationNS   *int64  `json:"duration_ns,omitempty"`
	// SetupNS is, for a request, how long its streams took to be accepted:
	// from the data stream's SYN_STREAM to its SYN_REPLY on this leg.
	SetupNS *int64 `json:"setup_ns,omitempty"`

	// ResetBy, on a close by RST, is the side that sent the RST: "c>s"
	// the client, "s>c" the server (or a middlebox in its name).
	ResetBy Dir `json:"reset_by,omitempty"`
	// IdleNS, on a close, is how long the connection had carried no byte
	// either way (from its first packet when it carried none).
	IdleNS *int64 `json:"idle_ns,omitempty"`

	// Gap and segment fields.
	Bytes *int64 `json:"bytes,omitempty"`
}

func ptr[T any](v T) *T { return &v }

// Summary totals a whole decode.
type Summary struct {
	Packets       int   `json:"packets"`
	Connections   int   `json:"connections"`
	Upgrades      int   `json:"upgrades"`
	FailedUpgrade int   `json:"failed_upgrades"`
	Requests      int   `json:"requests"`
	RequestErrors int   `json:"request_errors"`
	BytesToPod    int64 `json:"bytes_to_pod"`
	BytesFromPod  int64 `json:"bytes_from_pod"`
	SPDYFrames    int   `json:"spdy_frames"`
	Gaps          int   `json:"gaps"`
	GapBytes      int64 `json:"gap_bytes"`
	Warnings      int   `json:"warnings"`
	DecodeErrors  int   `json:"decode_errors"`
	// FirstError is the text of the first decode error, if any.
	FirstError string `json:"first_error,omitempty"`
	// Start and End bound the packets' times.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Legs totals each capture interface (leg) by name.
	Legs map[string]*LegSummary `json:"legs,omitempty"`
	// RequestLegs is how many legs carried port-forward requests; when
	// more than one, the request and byte totals are counted once (see
	// LegSummary).
	RequestLegs int `json:"request_legs,omitempty"`
}

// LegSummary totals one leg.
type LegSummary struct {
	// ID is the leg's place in the chain, when its capture says it.
	ID      leg.ID `json:"leg_id,omitempty"`
	Packets int    `json:"packets"`
	// Bytes is the TCP payload, each byte counted once: retransmitted
	// and overlapping copies are counted apart.
	Bytes      int64 `json:"bytes"`
	SPDYFrames int   `json:"spdy_frames"`
	Gaps       int   `json:"gaps"`
	// Retransmitted counts the segments the leg carried again, and
	// RetransmittedBytes their payload (with overlaps): a sign of loss or
	// of a receiver that stalled.
	Retransmitted      int   `json:"retransmitted"`
	RetransmittedBytes int64 `json:"retransmitted_bytes"`
	// The port-forward requests the leg carried, and their bytes.
	Requests      int   `json:"requests"`
	RequestErrors int   `json:"request_errors"`
	BytesToPod    int64 `json:"bytes_to_pod"`
	BytesFromPod  int64 `json:"bytes_from_pod"`
}

// add adds another part of the same leg.
func (ls *LegSummary) add(o *LegSummary) {
	if ls.ID == "" {
		ls.ID = o.ID
	}
	ls.Packets += o.Packets
	ls.Bytes += o.Bytes
	ls.SPDYFrames += o.SPDYFrames
	ls.Gaps += o.Gaps
	ls.Retransmitted += o.Retransmitted
	ls.RetransmittedBytes += o.RetransmittedBytes
	ls.Requests += o.Requests
	ls.RequestErrors += o.RequestErrors
	ls.BytesToPod += o.BytesToPod
	ls.BytesFromPod += o.BytesFromPod
}

// settle makes the totals count each request once: every SPDY leg of a
// session carries the same requests, so when several legs carried some,
// Requests, RequestErrors and the bytes to and from pods are those of the
// leg that carried most, and RequestLegs says how many legs carried them.
func (s *Summary) settle() {
	var top *LegSummary
	s.RequestLegs = 0
	for _, ls := range s.Legs {
		if ls.Requests == 0 {
			continue
		}
		s.RequestLegs++
		if top == nil || ls.Requests > top.Requests || (ls.Requests == top.Requests && ls.BytesToPod+ls.BytesFromPod > top.BytesToPod+top.BytesFromPod) {
			top = ls
		}
	}
	if s.RequestLegs > 1 {
		s.Requests, s.RequestErrors, s.BytesToPod, s.BytesFromPod = top.Requests, top.RequestErrors, top.BytesToPod, top.BytesFromPod
	}
}
