package packet

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/klauspost/compress/zstd"

	"github.com/pftap/pftap/internal/synth"
)

// synthPcap is a small SPDY bulk capture in pcap format: records of every
// size from a few bytes to a full segment.
func synthPcap(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := synth.Write(&b, synth.Config{Bytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type frameRec struct {
	ts      time.Time
	payload string
	src     string
	seq     uint32
}

// readFrames reads r to its end with a Reader.
func readFrames(t *testing.T, r io.Reader) ([]frameRec, error) {
	t.Helper()
	rd, err := NewReader(r)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var out []frameRec
	var p Packet
	for {
		if err := rd.Next(&p); err != nil {
			if err == io.EOF {
				err = nil
			}
			return out, err
		}
		out = append(out, frameRec{p.Time, string(p.Payload), p.Src.String(), p.Seq})
	}
}

// TestPcapParserAgreesWithPcapgo: pftap's pcap record parser, over its
// read-ahead, returns what gopacket's reader returns, frame by frame, and
// whatever sizes the source's reads come in (a file, one byte at a time,
// halves).
func TestPcapParserAgreesWithPcapgo(t *testing.T) {
	data := synthPcap(t)
	pr, err := pcapgo.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var want []frameRec
	for {
		d, ci, err := pr.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var p Packet
		if err := Decode(LinkType(pr.LinkType()), d, &p); err != nil {
			t.Fatal(err)
		}
		want = append(want, frameRec{ci.Timestamp, string(p.Payload), p.Src.String(), p.Seq})
	}
	path := filepath.Join(t.TempDir(), "bulk.pcap")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, r := range map[string]io.Reader{
		"file":       f,
		"bytes":      bytes.NewReader(data),
		"one byte":   iotest.OneByteReader(bytes.NewReader(data[:200<<10])),
		"half reads": iotest.HalfReader(bytes.NewReader(data)),
		"a pipe":     struct{ io.Reader }{bytes.NewReader(data)}, // no size hint: 1 MiB buffers
	} {
		got, err := readFrames(t, r)
		if err != nil && name != "one byte" {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "one byte" {
			// A cut-short file: as many frames as it holds, then an error.
			if !errors.Is(err, ErrBadCapture) {
				t.Fatalf("%s: %v", name, err)
			}
		} else if len(got) != len(want) {
			t.Fatalf("%s: %d frames, gopacket %d", name, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: frame %d differs:\n got %+v\nwant %+v", name, i, got[i], want[i])
			}
		}
	}
}

// TestPcapCutAnywhere: a pcap cut at any byte of its last records gives
// every frame before the cut, then one error naming a truncated capture.
func TestPcapCutAnywhere(t *testing.T) {
	data := synthPcap(t)
	var ends []int // where each record ends
	for off := 24; off < len(data); {
		off += 16 + int(binary.LittleEndian.Uint32(data[off+8:]))
		ends = append(ends, off)
	}
	// The first 40 records, cut in and around the last ten's headers and
	// all over their last 5000 bytes.
	data, ends = data[:ends[39]], ends[:40]
	var cuts []int
	for _, e := range ends[30:] {
		cuts = append(cuts, e-1, e, e+1, e+15, e+16, e+17)
	}
	for cut := len(data) - 5000; cut < len(data); cut += 13 {
		cuts = append(cuts, cut)
	}
	for _, cut := range cuts {
		if cut > len(data) {
			continue
		}
		whole := 0
		for whole < len(ends) && ends[whole] <= cut {
			whole++
		}
		got, err := readFrames(t, iotest.HalfReader(bytes.NewReader(data[:cut])))
		atBoundary := ends[max(whole-1, 0)] == cut
		switch {
		case len(got) != whole:
			t.Fatalf("cut at %d: %d frames, want the %d whole ones (%v)", cut, len(got), whole, err)
		case atBoundary && err != nil:
			t.Fatalf("cut at %d, between records: %v", cut, err)
		case !atBoundary && !errors.Is(err, ErrBadCapture):
			t.Fatalf("cut at %d, inside a record: %v, want a truncated capture", cut, err)
		}
	}
}

// TestPcapHostileLength: a record claiming a huge capture length is an
// error at once, not an allocation of its size.
func TestPcapHostileLength(t *testing.T) {
	data := synthPcap(t)[:24+16+100]
	binary.LittleEndian.PutUint32(data[16:20], 0xffffffff) // snap length
	binary.LittleEndian.PutUint32(data[24+8:24+12], 0xfffffff0)
	binary.LittleEndian.PutUint32(data[24+12:24+16], 0xfffffff0)
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := readFrames(t, bytes.NewReader(data))
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrBadCapture) {
		t.Fatalf("err %v, want a bad capture", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("reading it allocated %d MiB", grew>>20)
	}
}

// errAfter returns its data, then fails with err.
type errAfter struct {
	r   io.Reader
	err error
}

func (e *errAfter) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

// TestReadAheadPassesErrors: a source's error reaches the reader after
// every byte before it, and a Reader left mid-file stops its goroutine on
// Close.
func TestReadAheadPassesErrors(t *testing.T) {
	data := synthPcap(t)
	boom := errors.New("disk on fire")
	got, err := readFrames(t, &errAfter{bytes.NewReader(data[:len(data)/2]), boom})
	if !errors.Is(err, boom) || len(got) == 0 {
		t.Fatalf("%d frames, %v: want frames, then %v", len(got), err, boom)
	}

	before := runtime.NumGoroutine()
	for range 20 {
		rd, err := NewReader(struct{ io.Reader }{bytes.NewReader(data)})
		if err != nil {
			t.Fatal(err)
		}
		var p Packet
		if err := rd.Next(&p); err != nil {
			t.Fatal(err)
		}
		rd.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines left after Close (%d before)", n, before)
	}
}

// TestCompressedCutAtABlock: a zstd or gzip recording cut short where its
// writer had flushed (between two pcapng blocks, as a killed run leaves
// it) gives every packet before the cut, then an error: not a clean end.
func TestCompressedCutAtABlock(t *testing.T) {
	type flusher interface {
		io.WriteCloser
		Flush() error
	}
	for name, mk := range map[string]func(io.Writer) flusher{
		"zstd": func(w io.Writer) flusher {
			z, _ := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest))
			return z
		},
		"gzip": func(w io.Writer) flusher { return gzip.NewWriter(w) },
	} {
		var out bytes.Buffer
		enc := mk(&out)
		ng, err := pcapgo.NewNgWriter(enc, layers.LinkTypeRaw)
		if err != nil {
			t.Fatal(err)
		}
		var cuts []int // compressed length after each packet's flush
		for i := range 20 {
			d := ipv4TCP(strings.Repeat("x", 100+i))
			ci := gopacket.CaptureInfo{Timestamp: time.Unix(1, int64(i)), CaptureLength: len(d), Length: len(d)}
			if err := ng.WritePacket(ci, d); err != nil {
				t.Fatal(err)
			}
			ng.Flush()
			enc.Flush()
			cuts = append(cuts, out.Len())
		}
		enc.Close()
		if got, err := readFrames(t, bytes.NewReader(out.Bytes())); len(got) != 20 || err != nil {
			t.Fatalf("%s, whole: %d packets, %v", name, len(got), err)
		}
		got, err := readFrames(t, bytes.NewReader(out.Bytes()[:cuts[9]]))
		if len(got) != 10 || !errors.Is(err, ErrCompressedCut) || !errors.Is(err, ErrBadCapture) {
			t.Errorf("%s, cut after packet 10: %d packets, %v; want 10, then the stream cut short", name, len(got), err)
		}
	}
}
