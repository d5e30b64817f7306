package preview

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"GET / HTTP/1.1\r\n", 40, `"GET / HTTP/1.1\r\n"`},
		{"\x1b[31mred", 40, `"\x1b[31mred"`},
		{"abcdef", 3, `"abc"…(+3 bytes)`},
		{"héllo", 2, `"h"…(+5 bytes)`},
	} {
		if got := Bytes([]byte(tc.in), tc.max); got != tc.want {
			t.Errorf("Bytes(%q, %d) = %s, want %s", tc.in, tc.max, got, tc.want)
		}
	}
	if Token("data", 10) != "data" || Token("a b", 10) != `"a b"` {
		t.Error("Token")
	}
}

// TestQuoteASCIIIsStrconvs: quoteASCII writes what strconv.QuoteToASCII
// does, for every input of one and two bytes, every rune's encoding and
// random bytes.
func TestQuoteASCIIIsStrconvs(t *testing.T) {
	check := func(b []byte) {
		t.Helper()
		var sb strings.Builder
		quoteASCII(&sb, b)
		if want := strconv.QuoteToASCII(string(b)); sb.String() != want {
			t.Fatalf("% x: %s, want %s", b, sb.String(), want)
		}
	}
	for i := range 1 << 16 {
		check([]byte{byte(i)})
		check([]byte{byte(i >> 8), byte(i)})
	}
	for r := rune(0); r <= utf8.MaxRune+1; r++ {
		check(utf8.AppendRune([]byte("a"), r))
	}
	check([]byte{0xed, 0xa0, 0x80, 'x'}) // a surrogate: invalid UTF-8
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 64)
	for range 20000 {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		check(b[:rng.IntN(len(b))])
	}
}

func FuzzQuoteASCII(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\n\x00\xff\u00e9\U0001F600"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var sb strings.Builder
		quoteASCII(&sb, b)
		if want := strconv.QuoteToASCII(string(b)); sb.String() != want {
			t.Fatalf("% x: %s, want %s", b, sb.String(), want)
		}
	})
}
