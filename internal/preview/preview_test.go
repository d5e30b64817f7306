package preview

import "testing"

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
