package decode

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/pftap/pftap/internal/synth"
)

// BenchmarkDecodeBulk decodes a 256 MiB SPDY bulk transfer cut into
// 1448-byte segments (about 280,000 packets) from a file, and reports
// packets/s, MB/s of capture and the peak heap. scripts/bench-decode.sh runs
// the same on a larger file beside tshark.
// benchVerbosity is BenchmarkDecodeBulk's -v level (1: an event per SPDY
// frame, as `pftap decode -v`).
var benchVerbosity = 1

func BenchmarkDecodeBulk(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bulk.pcap")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	pkts, err := synth.Write(f, synth.Config{Bytes: 256 << 20})
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	b.ResetTimer()
	var peak uint64
	for i := 0; i < b.N; i++ {
		f, _ := os.Open(path)
		var n int
		sum, err := DecodeCapture(f, Options{Verbosity: benchVerbosity}, func(*Event) { n++ })
		f.Close()
		if err != nil || sum.BytesFromPod < 256<<20 {
			b.Fatalf("decode: %v, %+v", err, sum)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	b.ReportMetric(float64(pkts)*float64(b.N)/b.Elapsed().Seconds(), "packets/s")
	b.ReportMetric(float64(peak)/(1<<20), "MiB-heap")
}

// BenchmarkDecodeSmallRecording decodes a real recording from memory.
func BenchmarkDecodeSmallRecording(b *testing.B) {
	data := readRecording(b, "spdy-concurrent.pcapng")
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		if _, err := DecodeCapture(bytes.NewReader(data), Options{Verbosity: 1}, func(*Event) {}); err != nil {
			b.Fatal(err)
		}
	}
}
