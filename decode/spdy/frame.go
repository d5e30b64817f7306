package spdy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Version is the only SPDY protocol version this package reads.
const Version = 3

// FrameHeaderLen is the size of every SPDY frame header, control or data.
const FrameHeaderLen = 8

// MaxLength is the largest length a SPDY frame header can express (24 bits).
const MaxLength = 1<<24 - 1

// FrameType is the type of a SPDY frame. Control frames carry their type
// on the wire; DATA frames have none, and are given TypeData here.
type FrameType uint16

// Frame types, numbered as in the SPDY/3.1 draft. TypeData is not a wire
// value: it marks frames whose control bit is clear.
const (
	TypeData         FrameType = 0
	TypeSynStream    FrameType = 1
	TypeSynReply     FrameType = 2
	TypeRstStream    FrameType = 3
	TypeSettings     FrameType = 4
	TypeNoop         FrameType = 5 // SPDY/2 only; unknown in SPDY/3
	TypePing         FrameType = 6
	TypeGoAway       FrameType = 7
	TypeHeaders      FrameType = 8
	TypeWindowUpdate FrameType = 9
	TypeCredential   FrameType = 10 // SPDY/3 only; dropped in 3.1
)

var frameTypeNames = [...]string{
	TypeData:         "DATA",
	TypeSynStream:    "SYN_STREAM",
	TypeSynReply:     "SYN_REPLY",
	TypeRstStream:    "RST_STREAM",
	TypeSettings:     "SETTINGS",
	TypeNoop:         "NOOP",
	TypePing:         "PING",
	TypeGoAway:       "GOAWAY",
	TypeHeaders:      "HEADERS",
	TypeWindowUpdate: "WINDOW_UPDATE",
	TypeCredential:   "CREDENTIAL",
}

// String returns the specification's name of the type, such as
// "SYN_STREAM", or "UNKNOWN_TYPE_n".
func (t FrameType) String() string {
	if int(t) < len(frameTypeNames) {
		return frameTypeNames[t]
	}
	return "UNKNOWN_TYPE_" + strconv.Itoa(int(t))
}

// Flags are the 8 flag bits of a frame header. Their meaning depends on the
// frame type.
type Flags uint8

// Flag values. FlagFin applies to DATA, SYN_STREAM, SYN_REPLY and HEADERS;
// FlagUnidirectional to SYN_STREAM; FlagClearSettings to SETTINGS.
const (
	FlagFin            Flags = 0x01
	FlagUnidirectional Flags = 0x02
	FlagClearSettings  Flags = 0x01
)

// Has reports whether f contains all the bits of v.
func (f Flags) Has(v Flags) bool { return f&v == v }

// Describe names the flags set in f for a frame of type t, for example
// "FIN|UNIDIRECTIONAL", or "" when none is set.
func (f Flags) Describe(t FrameType) string {
	if f == 0 {
		return ""
	}
	var names []string
	rest := f
	switch t {
	case TypeSettings:
		if f.Has(FlagClearSettings) {
			names = append(names, "CLEAR_SETTINGS")
			rest &^= FlagClearSettings
		}
	case TypeData, TypeSynStream, TypeSynReply, TypeHeaders:
		if f.Has(FlagFin) {
			names = append(names, "FIN")
			rest &^= FlagFin
		}
		if t == TypeSynStream && f.Has(FlagUnidirectional) {
			names = append(names, "UNIDIRECTIONAL")
			rest &^= FlagUnidirectional
		}
	}
	if rest != 0 {
		names = append(names, fmt.Sprintf("0x%02x", uint8(rest)))
	}
	return strings.Join(names, "|")
}

// FrameHeader is the fixed 8-byte header every frame starts with.
type FrameHeader struct {
	// Control is the control bit: set for every type but DATA.
	Control bool
	// Version is the protocol version of a control frame (3 for SPDY/3).
	Version uint16
	// Type is the frame type; TypeData when Control is false.
	Type FrameType
	// Flags are the frame's flag bits.
	Flags Flags
	// Length is the number of payload bytes after the header.
	Length uint32
	// StreamID is the stream a DATA frame belongs to. For control frames
	// that name a stream it is filled in from the payload once parsed.
	StreamID uint32
}

// Header returns h itself; it lets every concrete frame satisfy Frame.
func (h FrameHeader) Header() FrameHeader { return h }

func (FrameHeader) isFrame() {}

// ParseFrameHeader decodes the 8-byte frame header at the start of b.
// It returns io.ErrUnexpectedEOF when b is shorter than FrameHeaderLen.
func ParseFrameHeader(b []byte) (FrameHeader, error) {
	if len(b) < FrameHeaderLen {
		return FrameHeader{}, io.ErrUnexpectedEOF
	}
	w0 := binary.BigEndian.Uint32(b[0:4])
	w1 := binary.BigEndian.Uint32(b[4:8])
	h := FrameHeader{Flags: Flags(w1 >> 24), Length: w1 & MaxLength}
	if w0&0x80000000 != 0 {
		h.Control = true
		h.Version = uint16(w0>>16) & 0x7fff
		h.Type = FrameType(w0 & 0xffff)
		if h.Type == TypeData {
			// Type 0 is not a control type; keep it apart from DATA.
			h.Type = 0xffff
		}
	} else {
		h.Type = TypeData
		h.StreamID = w0 & 0x7fffffff
	}
	return h, nil
}

// Frame is one decoded SPDY frame. The concrete types are *DataFrame,
// *SynStreamFrame, *SynReplyFrame, *RstStreamFrame, *SettingsFrame,
// *PingFrame, *GoAwayFrame, *HeadersFrame, *WindowUpdateFrame and
// *UnknownFrame. The set is closed.
type Frame interface {
	Header() FrameHeader
	isFrame()
}

// DataFrame carries stream payload.
type DataFrame struct {
	FrameHeader
	// Data is the payload. See Framer for who owns it.
	Data []byte
	// Start and More describe a piece of a frame (Framer.DataPieces):
	// Data begins at Start in the frame's payload, and More is set on
	// every piece but the last. A whole frame has neither.
	Start int
	More  bool
}

// SynStreamFrame opens a stream.
type SynStreamFrame struct {
	FrameHeader
	AssociatedTo uint32
	Priority     uint8
	Slot         uint8
	// Headers is the decoded header block; nil when it could not be
	// decoded (the frame is then returned with an error).
	Headers Headers
	// HeaderBlockLen is the size of the compressed header block.
	HeaderBlockLen int
}

// SynReplyFrame accepts a stream.
type SynReplyFrame struct {
	FrameHeader
	Headers        Headers
	HeaderBlockLen int
}

// HeadersFrame adds headers to an open stream.
type HeadersFrame struct {
	FrameHeader
	Headers        Headers
	HeaderBlockLen int
}

// RstStreamFrame aborts a stream.
type RstStreamFrame struct {
	FrameHeader
	Status RstStatus
}

// Setting is one entry of a SETTINGS frame.
type Setting struct {
	Flags uint8
	ID    SettingID
	Value uint32
}

// SettingsFrame carries connection settings.
type SettingsFrame struct {
	FrameHeader
	Settings []Setting
}

// PingFrame is a ping or its echo; the ID tells which side sent it (odd:
// the client, even: the server).
type PingFrame struct {
	FrameHeader
	ID uint32
}

// GoAwayFrame announces that the sender stops accepting streams.
type GoAwayFrame struct {
	FrameHeader
	LastGoodStreamID uint32
	Status           GoAwayStatus
}

// WindowUpdateFrame grants flow-control credit.
type WindowUpdateFrame struct {
	FrameHeader
	Delta uint32
}

// UnknownFrame is a control frame of a type this package does not know.
// It is returned instead of an error so that a decoder can go on.
type UnknownFrame struct {
	FrameHeader
	Payload []byte
}

// RstStatus is the status code of a RST_STREAM frame.
type RstStatus uint32

// RST_STREAM status codes.
const (
	RstProtocolError       RstStatus = 1
	RstInvalidStream       RstStatus = 2
	RstRefusedStream       RstStatus = 3
	RstUnsupportedVersion  RstStatus = 4
	RstCancel              RstStatus = 5
	RstInternalError       RstStatus = 6
	RstFlowControlError    RstStatus = 7
	RstStreamInUse         RstStatus = 8
	RstStreamAlreadyClosed RstStatus = 9
	RstInvalidCredentials  RstStatus = 10
	RstFrameTooLarge       RstStatus = 11
)

var rstNames = [...]string{
	RstProtocolError:       "PROTOCOL_ERROR",
	RstInvalidStream:       "INVALID_STREAM",
	RstRefusedStream:       "REFUSED_STREAM",
	RstUnsupportedVersion:  "UNSUPPORTED_VERSION",
	RstCancel:              "CANCEL",
	RstInternalError:       "INTERNAL_ERROR",
	RstFlowControlError:    "FLOW_CONTROL_ERROR",
	RstStreamInUse:         "STREAM_IN_USE",
	RstStreamAlreadyClosed: "STREAM_ALREADY_CLOSED",
	RstInvalidCredentials:  "INVALID_CREDENTIALS",
	RstFrameTooLarge:       "FRAME_TOO_LARGE",
}

func (s RstStatus) String() string {
	if s > 0 && int(s) < len(rstNames) {
		return rstNames[s]
	}
	return "UNKNOWN_STATUS_" + strconv.FormatUint(uint64(s), 10)
}

// GoAwayStatus is the status code of a GOAWAY frame.
type GoAwayStatus uint32

// GOAWAY status codes.
const (
	GoAwayOK            GoAwayStatus = 0
	GoAwayProtocolError GoAwayStatus = 1
	GoAwayInternalError GoAwayStatus = 2
)

func (s GoAwayStatus) String() string {
	switch s {
	case GoAwayOK:
		return "OK"
	case GoAwayProtocolError:
		return "PROTOCOL_ERROR"
	case GoAwayInternalError:
		return "INTERNAL_ERROR"
	}
	return "UNKNOWN_STATUS_" + strconv.FormatUint(uint64(s), 10)
}

// SettingID names a SETTINGS entry.
type SettingID uint32

// Setting identifiers.
const (
	SettingUploadBandwidth      SettingID = 1
	SettingDownloadBandwidth    SettingID = 2
	SettingRoundTripTime        SettingID = 3
	SettingMaxConcurrentStreams SettingID = 4
	SettingCurrentCwnd          SettingID = 5
	SettingDownloadRetransRate  SettingID = 6
	SettingInitialWindowSize    SettingID = 7
	SettingClientCertVectorSize SettingID = 8
)

var settingNames = [...]string{
	SettingUploadBandwidth:      "UPLOAD_BANDWIDTH",
	SettingDownloadBandwidth:    "DOWNLOAD_BANDWIDTH",
	SettingRoundTripTime:        "ROUND_TRIP_TIME",
	SettingMaxConcurrentStreams: "MAX_CONCURRENT_STREAMS",
	SettingCurrentCwnd:          "CURRENT_CWND",
	SettingDownloadRetransRate:  "DOWNLOAD_RETRANS_RATE",
	SettingInitialWindowSize:    "INITIAL_WINDOW_SIZE",
	SettingClientCertVectorSize: "CLIENT_CERTIFICATE_VECTOR_SIZE",
}

func (s SettingID) String() string {
	if s > 0 && int(s) < len(settingNames) {
		return settingNames[s]
	}
	return "SETTING_" + strconv.FormatUint(uint64(s), 10)
}

// Errors. Connection-fatal conditions are ErrFrameTooLarge and a broken
// header compression context (ErrMidStream, ErrHeaderContext); a
// *FrameError about one malformed frame leaves the framing intact.
var (
	// ErrFrameTooLarge means a frame header announced more payload than
	// the framer's limit allows.
	ErrFrameTooLarge = errors.New("spdy: frame too large")
	// ErrMidStream means the header compression context of this direction
	// was not seen from its first header block: the capture began after it.
	// Header blocks cannot be read; frame boundaries and DATA still can.
	ErrMidStream = errors.New("spdy: header compression context not seen from its start (capture began mid-session)")
	// ErrHeaderContext means an earlier header block could not be inflated,
	// so the direction's shared zlib context is lost for later blocks.
	ErrHeaderContext = errors.New("spdy: header compression context lost after an earlier bad header block")
	// ErrHeaderTooLarge means an inflated header block exceeded the limit.
	ErrHeaderTooLarge = errors.New("spdy: header block too large")
)

// FrameError reports a frame whose payload does not match its type.
type FrameError struct {
	Type     FrameType
	StreamID uint32
	Err      error
}

func (e *FrameError) Error() string {
	if e.StreamID != 0 {
		return fmt.Sprintf("spdy: %v frame on stream %d: %v", e.Type, e.StreamID, e.Err)
	}
	return fmt.Sprintf("spdy: %v frame: %v", e.Type, e.Err)
}

func (e *FrameError) Unwrap() error { return e.Err }

// IsConnectionError reports whether err leaves the rest of the direction
// undecodable (as opposed to one malformed frame).
func IsConnectionError(err error) bool {
	return errors.Is(err, ErrFrameTooLarge)
}
