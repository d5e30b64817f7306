package websocket

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func frames(t *testing.T, wire []byte, chunk int, borrow bool) ([]string, error) {
	t.Helper()
	d := NewDecoder()
	d.Borrow = borrow
	wire = append([]byte(nil), wire...) // a borrowing decoder unmasks in its own buffer, never in the caller's
	var out []string
	for i := 0; i < len(wire); i += chunk {
		d.Write(wire[i:min(i+chunk, len(wire))])
		for {
			f, _, err := d.Next()
			if err != nil {
				return out, err
			}
			if f == nil {
				break
			}
			out = append(out, Summarize(f)+" "+string(f.Payload))
		}
	}
	if d.Buffered() != 0 {
		out = append(out, "left over")
	}
	return out, nil
}

func TestFrames(t *testing.T) {
	masked := []byte{0x82, 0x85, 1, 2, 3, 4}
	for i, c := range []byte("hello") {
		masked = append(masked, c^[]byte{1, 2, 3, 4}[i%4])
	}
	long := append([]byte{0x82, 126, 0x01, 0x00}, bytes.Repeat([]byte("x"), 256)...)
	tests := []struct {
		name string
		wire []byte
		want string
		err  error
	}{
		{"binary unmasked", []byte{0x82, 3, 'a', 'b', 'c'}, "WS binary len=3 abc", nil},
		{"binary masked", masked, "WS binary masked len=5 hello", nil},
		{"16-bit length", long, "WS binary len=256 " + strings.Repeat("x", 256), nil},
		{"fragmented", []byte{0x02, 1, 'a', 0x80, 1, 'b'}, "WS binary (fragment) len=1 a|WS continuation len=1 b", nil},
		{"ping between fragments", []byte{0x02, 1, 'a', 0x89, 0, 0x80, 1, 'b'}, "WS binary (fragment) len=1 a|WS ping len=0 |WS continuation len=1 b", nil},
		{"close with reason", []byte{0x88, 5, 0x03, 0xe8, 'b', 'y', 'e'}, `WS close 1000 (normal closure) "bye" ` + "\x03\xe8bye", nil},
		{"oversized control frame", []byte{0x89, 126, 0, 200}, "", ErrProtocol},
		{"reserved opcode", []byte{0x83, 0}, "", ErrProtocol},
		{"64-bit length over the limit", []byte{0x82, 127, 0x7f, 0, 0, 0, 0, 0, 0, 0}, "", ErrFrameTooLarge},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 5, len(tt.wire)} {
			for _, borrow := range []bool{false, true} {
				tt, chunk := tt, chunk
				tt.name = fmt.Sprintf("%s (borrow %v)", tt.name, borrow)
				wire := append([]byte(nil), tt.wire...)
				got, err := frames(t, wire, chunk, borrow)
				if !bytes.Equal(wire, tt.wire) {
					t.Errorf("%s: the caller's bytes changed", tt.name)
				}
				if !errors.Is(err, tt.err) {
					t.Errorf("%s/%d: error %v, want %v", tt.name, chunk, err, tt.err)
					continue
				}
				if tt.err == nil && strings.Join(got, "|") != tt.want {
					t.Errorf("%s/%d: got %q, want %q", tt.name, chunk, strings.Join(got, "|"), tt.want)
				}
			}
		}
	}
}

func TestContinuationOutsideMessage(t *testing.T) {
	d := NewDecoder()
	d.Write([]byte{0x80, 1, 'x'})
	f, _, err := d.Next()
	if f == nil || !errors.Is(err, ErrProtocol) {
		t.Errorf("want the frame and ErrProtocol, got %v %v", f, err)
	}
}
