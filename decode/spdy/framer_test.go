package spdy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"

	ms "github.com/moby/spdystream/spdy"
)

// oracleFrames encodes a session direction with moby/spdystream's framer,
// an independent implementation, and returns the bytes with what each
// frame must decode to.
func oracleFrames(t *testing.T) ([]byte, []string) {
	t.Helper()
	var buf bytes.Buffer
	w, err := ms.NewFramer(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	frames := []ms.Frame{
		&ms.SettingsFrame{FlagIdValues: []ms.SettingsFlagIdValue{{Id: ms.SettingsInitialWindowSize, Value: 65536}}},
		&ms.SynStreamFrame{StreamId: 1, CFHeader: ms.ControlFrameHeader{Flags: ms.ControlFlagFin},
			Headers: http.Header{"Streamtype": {"error"}, "Port": {"80"}, "Requestid": {"0"}}},
		&ms.SynStreamFrame{StreamId: 3, Headers: http.Header{"Streamtype": {"data"}, "Port": {"80"}, "Requestid": {"0"}}},
		&ms.DataFrame{StreamId: 3, Data: []byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")},
		&ms.SynReplyFrame{StreamId: 3, Headers: http.Header{"X-Multi": {"a", "b"}}},
		&ms.HeadersFrame{StreamId: 3, Headers: http.Header{"Trailer": {"x"}}},
		&ms.WindowUpdateFrame{StreamId: 3, DeltaWindowSize: 4096},
		&ms.PingFrame{Id: 7},
		&ms.DataFrame{StreamId: 3, Flags: ms.DataFlagFin},
		&ms.RstStreamFrame{StreamId: 5, Status: ms.Cancel},
		&ms.GoAwayFrame{LastGoodStreamId: 3, Status: ms.GoAwayInternalError},
	}
	for _, f := range frames {
		if err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"SETTINGS INITIAL_WINDOW_SIZE=65536",
		"SYN_STREAM stream=1 flags=FIN port=80 requestid=0 streamtype=error",
		"SYN_STREAM stream=3 port=80 requestid=0 streamtype=data",
		`DATA stream=3 len=35 "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"`,
		"SYN_REPLY stream=3 x-multi=a x-multi=b",
		"HEADERS stream=3 trailer=x",
		"WINDOW_UPDATE stream=3 delta=4096",
		"PING id=7",
		"DATA stream=3 flags=FIN len=0",
		"RST_STREAM stream=5 status=CANCEL",
		"GOAWAY last_good_stream=3 status=INTERNAL_ERROR",
	}
	return buf.Bytes(), want
}

// sortedSummary summarizes f with its headers in name order: spdystream
// writes a map, so its wire order varies from run to run.
func sortedSummary(f Frame) string {
	switch f := f.(type) {
	case *SynStreamFrame:
		sortHeaders(f.Headers)
	case *SynReplyFrame:
		sortHeaders(f.Headers)
	case *HeadersFrame:
		sortHeaders(f.Headers)
	}
	return Summarize(f)
}

func sortHeaders(h Headers) {
	sort.SliceStable(h, func(i, j int) bool { return h[i].Name < h[j].Name })
}

func TestReadFrameAgainstSpdystream(t *testing.T) {
	b, want := oracleFrames(t)
	fr := NewFramer(bytes.NewReader(b))
	var got []string
	for {
		f, err := fr.ReadFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("frame %d: %v", len(got), err)
		}
		got = append(got, sortedSummary(f))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestPushAnyChunking feeds the same bytes one byte at a time and in odd
// chunks: the frames and their offsets must not depend on chunking.
func TestPushAnyChunking(t *testing.T) {
	b, want := oracleFrames(t)
	for _, chunk := range []int{1, 3, 7, 64, len(b)} {
		fr := NewFramer(nil)
		var got []string
		var offs []int64
		for i := 0; i < len(b); i += chunk {
			fr.Write(b[i:min(i+chunk, len(b))])
			for {
				f, off, err := fr.Next()
				if err != nil {
					t.Fatalf("chunk %d: %v", chunk, err)
				}
				if f == nil {
					break
				}
				got = append(got, sortedSummary(f))
				offs = append(offs, off)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("chunk %d: got\n%s", chunk, strings.Join(got, "\n"))
		}
		if offs[0] != 0 || offs[1] != 20 {
			t.Errorf("chunk %d: offsets %v", chunk, offs)
		}
		if fr.Buffered() != 0 || fr.Offset() != int64(len(b)) {
			t.Errorf("chunk %d: %d bytes left, offset %d", chunk, fr.Buffered(), fr.Offset())
		}
	}
}

func TestExactWireBytes(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		want string
		err  string
	}{
		{"data", []byte{0, 0, 0, 5, 1, 0, 0, 2, 'h', 'i'}, `DATA stream=5 flags=FIN len=2 "hi"`, ""},
		{"ping", []byte{0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 2}, "PING id=2", ""},
		{"rst", []byte{0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0, 3}, "RST_STREAM stream=9 status=REFUSED_STREAM", ""},
		{"rst unknown status", []byte{0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0, 99}, "RST_STREAM stream=9 status=UNKNOWN_STATUS_99", ""},
		{"window update", []byte{0x80, 3, 0, 9, 0, 0, 0, 8, 0x80, 0, 0, 1, 0, 1, 0, 0}, "WINDOW_UPDATE stream=1 delta=65536", ""},
		{"goaway", []byte{0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 7, 0, 0, 0, 1}, "GOAWAY last_good_stream=7 status=PROTOCOL_ERROR", ""},
		{"settings clear", []byte{0x80, 3, 0, 4, 1, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 100}, "SETTINGS flags=CLEAR_SETTINGS MAX_CONCURRENT_STREAMS=100", ""},
		{"unknown type", []byte{0x80, 3, 0, 0x42, 0, 0, 0, 1, 7}, "UNKNOWN_TYPE_66 version=3 len=1", ""},
		{"ping wrong length", []byte{0x80, 3, 0, 6, 0, 0, 0, 2, 0, 0}, "PING version=3 len=2", "PING frame: payload is 2 bytes, want 4"},
		{"settings count lies", []byte{0x80, 3, 0, 4, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff}, "SETTINGS version=3 len=4", "entries announced"},
		{"wrong version", []byte{0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1}, "PING version=2 len=4", "version 2"},
		{"syn_stream garbage block", []byte{0x80, 3, 0, 1, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2},
			"SYN_STREAM stream=1 headers=(2 compressed bytes, not decoded)", "capture began mid-session"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewFramer(bytes.NewReader(tt.wire)).ReadFrame()
			if tt.err == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("error %v, want it to contain %q", err, tt.err)
			}
			if f == nil {
				t.Fatal("no frame")
			}
			if got := Summarize(f); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMidStreamHeadersStillFramesData(t *testing.T) {
	b, _ := oracleFrames(t)
	// Skip the SETTINGS frame and the first SYN_STREAM (which carries the
	// zlib header): the framer joins at the second SYN_STREAM.
	start := 20
	h, _ := ParseFrameHeader(b[start:])
	start += FrameHeaderLen + int(h.Length)
	fr := NewFramer(bytes.NewReader(b[start:]))
	f, err := fr.ReadFrame()
	if !errors.Is(err, ErrMidStream) {
		t.Fatalf("want ErrMidStream, got %v", err)
	}
	var fe *FrameError
	if !errors.As(err, &fe) || fe.StreamID != 3 {
		t.Errorf("want a FrameError on stream 3, got %#v", err)
	}
	if f.(*SynStreamFrame).Headers != nil {
		t.Error("headers decoded from a context joined late")
	}
	f, err = fr.ReadFrame()
	if err != nil || Summarize(f) != `DATA stream=3 len=35 "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"` {
		t.Errorf("DATA after mid-stream join: %v %v", f, err)
	}
}

func TestLimits(t *testing.T) {
	big := []byte{0, 0, 0, 1, 0, 0xff, 0xff, 0xff}
	fr := NewFramer(bytes.NewReader(big))
	fr.MaxFrameSize = 1 << 20
	if _, err := fr.ReadFrame(); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("want ErrFrameTooLarge, got %v", err)
	}
	// A frame that announces 16 MiB but carries 3 bytes must not allocate
	// 16 MiB, and ends with ErrUnexpectedEOF.
	fr = NewFramer(bytes.NewReader(append(big, 1, 2, 3)))
	if _, err := fr.ReadFrame(); err != io.ErrUnexpectedEOF {
		t.Errorf("want ErrUnexpectedEOF, got %v", err)
	}
	if testing.AllocsPerRun(1, func() {
		NewFramer(bytes.NewReader(append(big, 1, 2, 3))).ReadFrame()
	}) > 20 {
		t.Error("too many allocations")
	}

	// A header block announcing more than MaxHeaderBytes.
	var buf bytes.Buffer
	w, _ := ms.NewFramer(&buf, nil)
	w.WriteFrame(&ms.SynStreamFrame{StreamId: 1, Headers: http.Header{"X": {strings.Repeat("v", 5000)}}})
	fr = NewFramer(&buf)
	fr.MaxHeaderBytes = 1000
	if _, err := fr.ReadFrame(); !errors.Is(err, ErrHeaderTooLarge) {
		t.Errorf("want ErrHeaderTooLarge, got %v", err)
	}
}

func TestReuseData(t *testing.T) {
	fr := NewFramer(nil)
	fr.ReuseData = true
	fr.Write([]byte{0, 0, 0, 1, 0, 0, 0, 2, 'a', 'b', 0, 0, 0, 1, 0, 0, 0, 1, 'c'})
	f1, _, _ := fr.Next()
	if string(f1.(*DataFrame).Data) != "ab" {
		t.Fatalf("first frame %q", f1.(*DataFrame).Data)
	}
	if d := f1.(*DataFrame).Data; cap(d) != len(d) {
		t.Error("an aliased payload must not be appendable into the buffer")
	}
	f2, _, _ := fr.Next()
	if string(f2.(*DataFrame).Data) != "c" {
		t.Fatalf("second frame %q", f2.(*DataFrame).Data)
	}
}

// TestDataPiecesAnyChunking: with DataPieces, whatever the chunking, the
// control frames are as without it, a DATA frame's pieces put together
// are its payload with its offset and header, and the bytes of a Write
// may be reused once Next has returned nil.
func TestDataPiecesAnyChunking(t *testing.T) {
	b, _ := oracleFrames(t)
	// Two big DATA frames between the oracle's frames.
	var big bytes.Buffer
	w, err := ms.NewFramer(&big, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload := func(n, seed int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i*7 + seed)
		}
		return p
	}
	p1, p2 := payload(5000, 1), payload(70, 2)
	w.WriteFrame(&ms.DataFrame{StreamId: 3, Data: p1})
	w.WriteFrame(&ms.DataFrame{StreamId: 5, Flags: ms.DataFlagFin, Data: p2})
	wire := append(append(append([]byte(nil), b[:20]...), big.Bytes()...), b[20:]...)

	whole := func() []string {
		fr := NewFramer(nil)
		fr.Write(wire)
		var out []string
		for {
			f, off, err := fr.Next()
			if err != nil || f == nil {
				return out
			}
			out = append(out, fmt.Sprintf("@%d %s", off, sortedSummary(f)))
		}
	}()
	for _, chunk := range []int{1, 3, 7, 64, 1448, len(wire)} {
		fr := NewFramer(nil)
		fr.DataPieces = true
		var got []string
		var acc []byte // the pieces of the current DATA frame
		for i := 0; i < len(wire); i += chunk {
			in := append([]byte(nil), wire[i:min(i+chunk, len(wire))]...)
			fr.Write(in)
			for {
				f, off, err := fr.Next()
				if err != nil {
					t.Fatalf("chunk %d: %v", chunk, err)
				}
				if f == nil {
					break
				}
				d, ok := f.(*DataFrame)
				if ok && (d.More || d.Start > 0) {
					if d.Start != len(acc) {
						t.Fatalf("chunk %d: piece at %d after %d bytes", chunk, d.Start, len(acc))
					}
					acc = append(acc, d.Data...)
					if d.More {
						continue
					}
					f = &DataFrame{FrameHeader: d.FrameHeader, Data: acc}
					acc = nil
				}
				got = append(got, fmt.Sprintf("@%d %s", off, sortedSummary(f)))
			}
			// What Write kept is copied before Next asks for more.
			for j := range in {
				in[j] = 0xee
			}
		}
		if !reflect.DeepEqual(got, whole) {
			t.Errorf("chunk %d: got\n%s\nwant\n%s", chunk, strings.Join(got, "\n"), strings.Join(whole, "\n"))
		}
		if fr.Buffered() != 0 || fr.Offset() != int64(len(wire)) {
			t.Errorf("chunk %d: %d bytes left, offset %d", chunk, fr.Buffered(), fr.Offset())
		}
	}
	// A direction that ends inside a DATA frame counts its header and
	// the pieces given as buffered, as without DataPieces.
	for _, dp := range []bool{false, true} {
		fr := NewFramer(nil)
		fr.DataPieces = dp
		fr.Write(big.Bytes()[:3000])
		for {
			if f, _, _ := fr.Next(); f == nil {
				break
			}
		}
		if fr.Buffered() != 3000 {
			t.Errorf("DataPieces %v: %d bytes buffered inside a frame, want 3000", dp, fr.Buffered())
		}
	}
}
