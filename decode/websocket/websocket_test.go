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

// wholeAndParts decodes wire whole and in parts, pushed chunk bytes at a
// time, and returns each frame's header and payload as the two modes saw
// them (the parts joined), and the parts' own trace.
func wholeAndParts(wire []byte, chunk int, borrow bool) (whole, parts []string, trace []string) {
	for _, inParts := range []bool{false, true} {
		d := NewDecoder()
		d.MaxFrameSize = 1 << 16
		d.Parts, d.Borrow = inParts, borrow
		w := append([]byte(nil), wire...)
		var got []string
		var payload []byte
		var consumed int64
		var held string // an error judged on a frame's first part, said once it is whole
	push:
		for i := 0; i < len(w); i += chunk {
			d.Write(w[i:min(i+chunk, len(w))])
			for {
				f, off, err := d.Next()
				if f != nil {
					if inParts {
						trace = append(trace, fmt.Sprintf("%d+%d/%d more=%v", off, f.Part, f.Length, f.More))
						if f.Part != uint64(len(payload)) {
							trace = append(trace, "out of order")
						}
					}
					if f.Part == 0 {
						consumed += int64(f.HeaderLen)
					}
					consumed += int64(len(f.Payload))
					payload = append(payload, f.Payload...)
					if !f.More {
						got = append(got, fmt.Sprintf("@%d %s %q", off, Summarize(f), payload))
						payload = nil
						if held != "" {
							got, held = append(got, held), ""
						}
					}
				}
				if err != nil && f != nil && f.More {
					held = "error: " + err.Error()
					continue
				}
				if err != nil {
					got = append(got, "error: "+err.Error())
					if f == nil {
						break push
					}
					continue
				}
				if f == nil {
					break
				}
			}
		}
		got = append(got, fmt.Sprintf("consumed %d, buffered %d", consumed, d.Buffered()))
		if inParts {
			parts = got
		} else {
			whole = got
		}
	}
	return whole, parts, trace
}

// TestParts: in Parts mode a data frame's payload comes as it arrives,
// unmasked with the key's phase running on across parts, each part
// saying where it begins and whether more follows; control frames come
// whole; joined, the parts are the frames the whole mode returns.
func TestParts(t *testing.T) {
	key := []byte{9, 8, 7, 6}
	msg := []byte("HTTP/1.1 200 OK\r\nContent-Length: 30000\r\n\r\n")
	wire := []byte{0x02, 0x80 | byte(len(msg)), key[0], key[1], key[2], key[3]} // a masked binary fragment
	for i, c := range msg {
		wire = append(wire, c^key[i%4])
	}
	wire = append(wire, 0x89, 2, 'h', 'i')                // a ping between the fragments
	wire = append(wire, 0x80, 5, 'w', 'o', 'r', 'l', 'd') // the last fragment
	wire = append(wire, 0x88, 2, 3, 0xe8)                 // close 1000
	for _, chunk := range []int{1, 3, 7, len(wire)} {
		for _, borrow := range []bool{false, true} {
			whole, parts, trace := wholeAndParts(wire, chunk, borrow)
			if strings.Join(whole, "\n") != strings.Join(parts, "\n") {
				t.Errorf("chunk %d borrow %v: whole\n%s\nparts\n%s", chunk, borrow, strings.Join(whole, "\n"), strings.Join(parts, "\n"))
			}
			if !strings.Contains(strings.Join(parts, "\n"), `"HTTP/1.1 200 OK`) || strings.Contains(strings.Join(trace, " "), "out of order") {
				t.Errorf("chunk %d: %v\n%v", chunk, parts, trace)
			}
			// Pushed a byte at a time, the first frame comes in as many
			// parts as it has payload bytes; pushed whole, in one.
			n := 0
			for _, p := range trace {
				if strings.HasPrefix(p, "0+") {
					n++
				}
			}
			want := map[bool]int{true: len(msg), false: 1}[chunk == 1]
			if chunk == 1 || chunk == len(wire) {
				if n != want {
					t.Errorf("chunk %d: the first frame in %d parts, want %d: %v", chunk, n, want, trace)
				}
			}
		}
	}
}
