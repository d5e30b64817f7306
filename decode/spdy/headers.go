package spdy

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// HeaderField is one name/value pair of a header block. A wire value that
// holds several NUL-separated values becomes several fields with one name.
type HeaderField struct {
	Name  string
	Value string
}

// Headers is a decoded header block in wire order. Names are as sent
// (SPDY/3 requires lower case).
type Headers []HeaderField

// Get returns the first value of the named header (case-insensitive), or "".
func (h Headers) Get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// MarshalJSON writes the headers as one JSON object in wire order; a name
// that occurs more than once has its values joined with ", ".
func (h Headers) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	seen := make(map[string]int, len(h))
	var names []string
	var vals [][]string
	for _, f := range h {
		if i, ok := seen[f.Name]; ok {
			vals[i] = append(vals[i], f.Value)
			continue
		}
		seen[f.Name] = len(names)
		names = append(names, f.Name)
		vals = append(vals, []string{f.Value})
	}
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(n)
		v, _ := json.Marshal(strings.Join(vals[i], ", "))
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads MarshalJSON's form back, in its order (a value
// joined from several stays one field).
func (h *Headers) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		*h = nil
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("spdy: headers: want a JSON object, not %v", tok)
	}
	var out Headers
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return err
		}
		var v string
		if err := dec.Decode(&v); err != nil {
			return err
		}
		out = append(out, HeaderField{Name: k.(string), Value: v})
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	*h = out
	return nil
}

// String renders the headers as "name=value name2=value2".
func (h Headers) String() string {
	var b strings.Builder
	for i, f := range h {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f.Name)
		b.WriteByte('=')
		b.WriteString(f.Value)
	}
	return b.String()
}

// byteQueue is the input of a header inflater: compressed bytes appended
// block by block, read one byte at a time so that flate never reads ahead
// of the block it is decoding.
type byteQueue struct {
	b   []byte
	off int
}

func (q *byteQueue) push(p []byte) {
	if q.off == len(q.b) {
		q.b = q.b[:0]
		q.off = 0
	}
	q.b = append(q.b, p...)
}

func (q *byteQueue) ReadByte() (byte, error) {
	if q.off >= len(q.b) {
		return 0, io.EOF
	}
	c := q.b[q.off]
	q.off++
	return c, nil
}

func (q *byteQueue) Read(p []byte) (int, error) {
	if q.off >= len(q.b) {
		return 0, io.EOF
	}
	n := copy(p, q.b[q.off:])
	q.off += n
	return n, nil
}

// headerInflater holds the zlib context of one direction of a session.
type headerInflater struct {
	in  byteQueue
	z   io.ReadCloser
	err error // sticky: once set, no later block can be inflated
	tmp [4]byte
}

// inflate decodes one compressed header block. max bounds the inflated size.
func (hi *headerInflater) inflate(block []byte, max int) (Headers, error) {
	if hi.err != nil {
		return nil, hi.err
	}
	hi.in.push(block)
	if hi.z == nil {
		// The first block of a context starts with a zlib header (with the
		// preset-dictionary flag); anything else means we joined late.
		if len(block) < 2 || block[0]&0x0f != 8 || (uint16(block[0])<<8|uint16(block[1]))%31 != 0 || block[1]&0x20 == 0 {
			hi.err = ErrMidStream
			return nil, hi.err
		}
		z, err := zlib.NewReaderDict(&hi.in, HeaderDictionary)
		if err != nil {
			hi.err = fmt.Errorf("%w: first header block: %v", ErrHeaderContext, err)
			return nil, err
		}
		hi.z = z
	}
	h, err := hi.readBlock(max)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("header block ends early: %w", io.ErrUnexpectedEOF)
		}
		hi.err = fmt.Errorf("%w: %v", ErrHeaderContext, err)
		return nil, err
	}
	return h, nil
}

func (hi *headerInflater) readUint32() (uint32, error) {
	if _, err := io.ReadFull(hi.z, hi.tmp[:]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(hi.tmp[:]), nil
}

func (hi *headerInflater) readBlock(budget int) (Headers, error) {
	n, err := hi.readUint32()
	if err != nil {
		return nil, err
	}
	budget -= 4
	// Every pair takes at least 8 bytes of lengths: that bounds the count
	// by the budget before anything is allocated from it.
	if int64(n)*8 > int64(budget) {
		return nil, fmt.Errorf("%w: %d header pairs announced", ErrHeaderTooLarge, n)
	}
	h := make(Headers, 0, n)
	readString := func() (string, error) {
		l, err := hi.readUint32()
		if err != nil {
			return "", err
		}
		budget -= 4
		if int64(l) > int64(budget) {
			return "", fmt.Errorf("%w: field of %d bytes", ErrHeaderTooLarge, l)
		}
		budget -= int(l)
		buf := make([]byte, l)
		if _, err := io.ReadFull(hi.z, buf); err != nil {
			return "", err
		}
		return string(buf), nil
	}
	for i := uint32(0); i < n; i++ {
		name, err := readString()
		if err != nil {
			return nil, err
		}
		val, err := readString()
		if err != nil {
			return nil, err
		}
		for _, v := range strings.Split(val, "\x00") {
			h = append(h, HeaderField{Name: name, Value: v})
		}
	}
	return h, nil
}
