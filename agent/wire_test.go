package agent

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/pftap/pftap/decode"
)

// TestWireRoundTrip: every binary message decodes back to what was
// encoded.
func TestWireRoundTrip(t *testing.T) {
	ts := time.Unix(1765000000, 123456789)
	rs := []decode.TLSRecord{{Time: ts, Conn: 3, Dir: decode.ToServer, Type: 23, Length: 16401}, {Time: ts.Add(time.Millisecond), Conn: 300, Dir: decode.FromServer, Type: 21, Length: 2}}
	leg, got, err := DecodeRecords(EncodeRecords(nil, 2, rs), nil)
	if err != nil || leg != 2 || !reflect.DeepEqual(got, rs) {
		t.Errorf("records: leg %d %+v %v", leg, got, err)
	}
	l, gts, orig, flags, data, err := DecodeFrame(EncodeFrame(nil, 1, ts, 1514, FrameShortened, []byte("headers")))
	if err != nil || l != 1 || !gts.Equal(ts) || orig != 1514 || flags != FrameShortened || string(data) != "headers" {
		t.Errorf("frame: %d %v %d %d %q %v", l, gts, orig, flags, data, err)
	}
	id, dir, off, sdata, err := DecodeSPDY(EncodeSPDY(nil, 7, 1, 4096, []byte{0x80, 3, 0, 1}))
	if err != nil || id != 7 || dir != 1 || off != 4096 || !bytes.Equal(sdata, []byte{0x80, 3, 0, 1}) {
		t.Errorf("spdy: %d %d %d %x %v", id, dir, off, sdata, err)
	}
	gid, gdir, k, crc, err := DecodeGrid(EncodeGrid(nil, 7, 0, 3*SPDYPrefix, 0xdeadbeef))
	if err != nil || gid != 7 || gdir != 0 || k != 3*SPDYPrefix || crc != 0xdeadbeef {
		t.Errorf("grid: %d %d %d %x %v", gid, gdir, k, crc, err)
	}
	var b bytes.Buffer
	WriteMessage(&b, MsgStatus, []byte(`{}`))
	b.Write(AppendMessage(nil, MsgDone, nil))
	br := bufio.NewReader(&b)
	if typ, p, err := ReadMessage(br, nil); typ != MsgStatus || string(p) != "{}" || err != nil {
		t.Errorf("message: %c %q %v", typ, p, err)
	}
	if typ, p, err := ReadMessage(br, nil); typ != MsgDone || len(p) != 0 || err != nil {
		t.Errorf("message: %c %q %v", typ, p, err)
	}
	if _, _, err := ReadMessage(br, nil); err != io.EOF {
		t.Errorf("after the last message: %v, want EOF", err)
	}
}

// TestWireHostile: a length over MaxMessage is refused before anything is
// allocated, a message cut short is io.ErrUnexpectedEOF, and malformed
// payloads are errors, not panics.
func TestWireHostile(t *testing.T) {
	big := []byte{MsgFrame, 0xff, 0xff, 0xff, 0xff}
	if _, _, err := ReadMessage(bufio.NewReader(bytes.NewReader(big)), nil); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("huge length: %v", err)
	}
	cut := AppendMessage(nil, MsgEvent, []byte(`{"l":0}`))
	if _, _, err := ReadMessage(bufio.NewReader(bytes.NewReader(cut[:len(cut)-2])), nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut message: %v", err)
	}
	for _, p := range [][]byte{nil, {0x80}, {1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80}, {1, 2, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}} {
		if _, _, err := DecodeRecords(p, nil); err == nil && len(p) > 1 {
			t.Errorf("records %x: no error", p)
		}
		if _, _, _, _, err := DecodeSPDY(p); err == nil {
			t.Errorf("spdy %x: no error", p)
		}
		if _, _, _, _, err := DecodeGrid(p); err == nil {
			t.Errorf("grid %x: no error", p)
		}
		if _, _, _, _, _, err := DecodeFrame(p); err == nil {
			t.Errorf("frame %x: no error", p)
		}
	}
}

// FuzzWire: no input makes a decoder of the protocol panic or allocate
// beyond what it was given.
func FuzzWire(f *testing.F) {
	ts := time.Unix(1765000000, 0)
	f.Add(EncodeRecords(nil, 1, []decode.TLSRecord{{Time: ts, Conn: 1, Type: 23, Length: 40}}))
	f.Add(EncodeFrame(nil, 0, ts, 60, 0, make([]byte, 60)))
	f.Add(EncodeSPDY(nil, 2, 0, 0, []byte{0x80, 3, 0, 1, 0, 0, 0, 10}))
	f.Add(EncodeGrid(nil, 2, 1, SPDYPrefix, 1))
	f.Add(AppendMessage(nil, MsgUpgrade, []byte(`{"id":1}`)))
	f.Fuzz(func(t *testing.T, p []byte) {
		DecodeRecords(p, nil)
		DecodeFrame(p)
		DecodeSPDY(p)
		DecodeGrid(p)
		br := bufio.NewReader(bytes.NewReader(p))
		for {
			_, m, err := ReadMessage(br, nil)
			if err != nil {
				break
			}
			if len(m) > len(p) {
				t.Fatalf("a message of %d bytes from %d bytes of input", len(m), len(p))
			}
		}
	})
}
