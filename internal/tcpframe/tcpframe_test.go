package tcpframe

import (
	"crypto/rand"
	"net/netip"
	"testing"
)

// naiveSum is the textbook 16-bit ones'-complement sum, the oracle for sum.
func naiveSum(b []byte, s uint32) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func TestChecksumMatchesNaive(t *testing.T) {
	for n := 0; n < 300; n++ {
		b := make([]byte, n)
		rand.Read(b)
		if fold(sum(b, 12345)) != fold(naiveSum(b, 12345)) {
			t.Fatalf("length %d: fast %x, naive %x", n, fold(sum(b, 12345)), fold(naiveSum(b, 12345)))
		}
	}
	b := make([]byte, 65495)
	for i := range b {
		b[i] = 0xff
	}
	if fold(sum(b, 0xffff)) != fold(naiveSum(b, 0xffff)) {
		t.Fatal("all ones")
	}
	// Sums carried on from one call to the next, as the frame builder
	// does (the header's sum, then the payload's), large starting sums
	// included.
	for _, s0 := range []uint32{0, 1, 0xffff, 0xfffffffe, 0xffffffff} {
		for n := 0; n < 80; n++ {
			b := make([]byte, n)
			rand.Read(b)
			if fold(sum(b[n/2&^1:], sum(b[:n/2&^1], s0))) != fold64(uint64(s0)+uint64(naiveSum(b, 0))) {
				t.Fatalf("start %x, length %d: chained sums differ", s0, n)
			}
		}
	}
}

// fold64 folds a 64-bit ones'-complement sum to 16 bits, complemented
// (as fold does).
func fold64(s uint64) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

func BenchmarkChecksum(b *testing.B) {
	payload := make([]byte, 1448)
	rand.Read(payload)
	b.SetBytes(int64(len(payload)))
	for i := 0; i < b.N; i++ {
		sum(payload, 0)
	}
}

func BenchmarkAppendTCPFrame(b *testing.B) {
	payload := make([]byte, 64<<10)
	buf := make([]byte, 0, 70<<10)
	b.SetBytes(int64(len(payload)))
	for i := 0; i < b.N; i++ {
		buf = Append(buf[:0], mustAP("10.0.0.1:1"), mustAP("10.0.0.2:2"), 1, 1, FlagACK, payload)
	}
}

func mustAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
