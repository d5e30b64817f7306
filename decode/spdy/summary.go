package spdy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pftap/pftap/internal/preview"
)

// PreviewBytes is how many payload bytes Summarize shows for a DATA frame.
const PreviewBytes = 40

// Summarize returns a one-line description of f, such as
//
//	SYN_STREAM stream=1 flags=FIN streamtype=error port=80 requestid=0
//	DATA stream=3 len=78 "GET / HTTP/1.1\r\nHost: localhost:10080"…(+38 bytes)
//
// The line is bounded: DATA shows at most PreviewBytes of payload.
func Summarize(f Frame) string {
	h := f.Header()
	var b strings.Builder
	if h.Type == TypeData {
		// The line in one allocation: the preview's bytes at most 4 each.
		b.Grow(64 + 4*PreviewBytes)
	}
	b.WriteString(h.Type.String())
	if h.Type == TypeData || h.StreamID != 0 {
		b.WriteString(" stream=")
		b.WriteString(strconv.FormatUint(uint64(h.StreamID), 10))
	}
	if fl := h.Flags.Describe(h.Type); fl != "" {
		b.WriteString(" flags=")
		b.WriteString(fl)
	}
	switch f := f.(type) {
	case *DataFrame:
		// A frame that came in pieces holds only its first bytes: its
		// length is the header's.
		n := max(len(f.Data), int(f.Length))
		b.WriteString(" len=")
		b.WriteString(strconv.Itoa(n))
		if n > 0 {
			b.WriteByte(' ')
			preview.WritePrefix(&b, f.Data, n, PreviewBytes)
		}
	case *SynStreamFrame:
		if f.AssociatedTo != 0 {
			fmt.Fprintf(&b, " assoc=%d", f.AssociatedTo)
		}
		writeHeaders(&b, f.Headers, f.HeaderBlockLen)
	case *SynReplyFrame:
		writeHeaders(&b, f.Headers, f.HeaderBlockLen)
	case *HeadersFrame:
		writeHeaders(&b, f.Headers, f.HeaderBlockLen)
	case *RstStreamFrame:
		fmt.Fprintf(&b, " status=%v", f.Status)
	case *SettingsFrame:
		for _, s := range f.Settings {
			fmt.Fprintf(&b, " %v=%d", s.ID, s.Value)
		}
	case *PingFrame:
		fmt.Fprintf(&b, " id=%d", f.ID)
	case *GoAwayFrame:
		fmt.Fprintf(&b, " last_good_stream=%d status=%v", f.LastGoodStreamID, f.Status)
	case *WindowUpdateFrame:
		fmt.Fprintf(&b, " delta=%d", f.Delta)
	case *UnknownFrame:
		fmt.Fprintf(&b, " version=%d len=%d", h.Version, len(f.Payload))
	}
	return b.String()
}

func writeHeaders(b *strings.Builder, h Headers, blockLen int) {
	if h == nil {
		fmt.Fprintf(b, " headers=(%d compressed bytes, not decoded)", blockLen)
		return
	}
	for _, f := range h {
		b.WriteByte(' ')
		b.WriteString(f.Name)
		b.WriteByte('=')
		b.WriteString(preview.Token(f.Value, 80))
	}
}
