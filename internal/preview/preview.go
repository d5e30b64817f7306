package preview

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bytes renders at most max bytes of b as a quoted Go-style string: printable
// text as is, control characters and invalid UTF-8 escaped, so no payload can
// move the cursor or change a terminal's colours. When b is longer, the
// result ends with "…(+N bytes)".
func Bytes(b []byte, max int) string { return Prefix(b, len(b), max) }

// Prefix is Bytes for a payload of n bytes of which b holds the first
// (at least max of them when n is more than max).
func Prefix(b []byte, n, max int) string {
	cut := b
	if len(cut) > max {
		cut = cut[:max]
		// Do not split a UTF-8 sequence at the cut.
		for i := len(cut) - 1; i >= 0 && i >= len(cut)-utf8.UTFMax; i-- {
			if utf8.RuneStart(cut[i]) {
				if r, size := utf8.DecodeRune(b[i:]); r != utf8.RuneError && i+size > len(cut) {
					cut = cut[:i]
				}
				break
			}
		}
	}
	var sb strings.Builder
	sb.WriteString(strconv.QuoteToASCII(string(cut)))
	if rest := n - len(cut); rest > 0 {
		sb.WriteString("…(+")
		sb.WriteString(strconv.Itoa(rest))
		sb.WriteString(" bytes)")
	}
	return sb.String()
}

// Text is like Bytes for a string.
func Text(s string, max int) string { return Bytes([]byte(s), max) }

// IsMostlyText reports whether b looks like text: mostly printable ASCII,
// tabs and line ends.
func IsMostlyText(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	bad := 0
	for _, c := range b {
		if (c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f {
			bad++
		}
	}
	return bad*20 <= len(b)
}

// Token returns s unchanged when it is short printable ASCII without spaces
// or quotes, and Text(s, max) otherwise, so that "name=value" lists stay
// unambiguous.
func Token(s string, max int) string {
	if len(s) <= max && s != "" {
		plain := true
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
				plain = false
				break
			}
		}
		if plain {
			return s
		}
	}
	return Text(s, max)
}
