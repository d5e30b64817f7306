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
	var sb strings.Builder
	WritePrefix(&sb, b, n, max)
	return sb.String()
}

// WritePrefix writes Prefix(b, n, max) to sb, growing it once.
func WritePrefix(sb *strings.Builder, b []byte, n, max int) {
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
	// Every byte becomes at most 4 (\xNN), the quotes 2, the count of the
	// rest at most 30.
	sb.Grow(4*len(cut) + 32)
	quoteASCII(sb, cut)
	if rest := n - len(cut); rest > 0 {
		sb.WriteString("…(+")
		sb.WriteString(strconv.Itoa(rest))
		sb.WriteString(" bytes)")
	}
}

const hexDigits = "0123456789abcdef"

// quoteASCII writes b as strconv.QuoteToASCII(string(b)) would, without
// making b a string first (a preview of every frame of a transfer was
// three allocations and strconv's loop over runes):
// TestQuoteASCIIIsStrconvs checks it byte for byte.
func quoteASCII(sb *strings.Builder, b []byte) {
	sb.WriteByte('"')
	for i := 0; i < len(b); {
		c := b[i]
		if plainASCII(c) {
			j := i + 1
			for j < len(b) && plainASCII(b[j]) {
				j++
			}
			sb.Write(b[i:j])
			i = j
			continue
		}
		if c < utf8.RuneSelf {
			i++
			switch c {
			case '"', '\\':
				sb.WriteByte('\\')
				sb.WriteByte(c)
			case '\a':
				sb.WriteString(`\a`)
			case '\b':
				sb.WriteString(`\b`)
			case '\f':
				sb.WriteString(`\f`)
			case '\n':
				sb.WriteString(`\n`)
			case '\r':
				sb.WriteString(`\r`)
			case '\t':
				sb.WriteString(`\t`)
			case '\v':
				sb.WriteString(`\v`)
			default:
				hexEscape(sb, 'x', uint32(c), 2)
			}
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			hexEscape(sb, 'x', uint32(c), 2)
		case r < 0x10000:
			hexEscape(sb, 'u', uint32(r), 4)
		default:
			hexEscape(sb, 'U', uint32(r), 8)
		}
	}
	sb.WriteByte('"')
}

// plainASCII is a byte QuoteToASCII leaves as it is.
func plainASCII(c byte) bool { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' }

// hexEscape writes \ kind and v in digits lower-case hex digits.
func hexEscape(sb *strings.Builder, kind byte, v uint32, digits int) {
	sb.WriteByte('\\')
	sb.WriteByte(kind)
	for s := 4 * (digits - 1); s >= 0; s -= 4 {
		sb.WriteByte(hexDigits[v>>uint(s)&0xf])
	}
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
