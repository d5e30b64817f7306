package capture

import (
	"bytes"

	"github.com/pftap/pftap/internal/secret"
	"github.com/pftap/pftap/internal/tcpframe"
)

// credentialHeaders are "\nNAME:" of the headers whose values RedactFrame
// hides (secret.Headers), and keepScheme whether each keeps its first word.
var credentialHeaders, keepScheme = func() ([][]byte, []bool) {
	var hs [][]byte
	var ks []bool
	for _, h := range secret.Headers {
		hs = append(hs, []byte("\n"+h+":"))
		ks = append(ks, secret.KeepsScheme(h))
	}
	return hs, ks
}()

// credentialFirst marks the bytes a credential header's name can start
// with, in either case: most newlines in a payload are followed by none
// of them.
var credentialFirst = func() (t [256]bool) {
	for _, h := range secret.Headers {
		t[h[0]] = true
		t[h[0]-'a'+'A'] = true
	}
	return t
}()

// wsTokenPrefix carries a bearer token in a WebSocket subprotocol.
var wsTokenPrefix = []byte(secret.WebSocketTokenPrefix)

// RedactFrame hides credentials in the TCP payload of an Ethernet/IPv4 or
// IPv6 frame, in place: the values of the credential header lines of
// secret.Headers (Authorization and Proxy-Authorization after the scheme
// word, so "Bearer" stays readable) and bearer tokens in WebSocket
// subprotocols become 'x',
// and the TCP checksum is recomputed. Lengths do not change, so sequence
// numbers stay right. It reports whether it changed anything. A header
// split across two segments is not seen.
func RedactFrame(frame []byte) bool {
	tcp, ok := tcpframe.Segment(frame)
	if !ok || len(tcp) < 20 {
		return false
	}
	hl := int(tcp[12]>>4) * 4
	if hl < 20 || hl > len(tcp) {
		return false
	}
	payload := tcp[hl:]
	changed := false
	// Header lines start after a newline: look at each newline (memchr
	// speed on bulk payloads, which have few) and compare the name that
	// follows in ASCII case-insensitively.
	for nl := 0; nl < len(payload); nl++ {
		i := bytes.IndexByte(payload[nl:], '\n')
		if i < 0 {
			break
		}
		nl += i
		if nl+1 >= len(payload) || !credentialFirst[payload[nl+1]] {
			continue
		}
		for hi, h := range credentialHeaders {
			if !hasPrefixFold(payload[nl:], h) {
				continue
			}
			start := nl + len(h)
			end := start
			for end < len(payload) && payload[end] != '\r' && payload[end] != '\n' {
				end++
			}
			v := start
			for v < end && payload[v] == ' ' {
				v++
			}
			if keepScheme[hi] {
				// Keep the scheme: "Bearer", "Basic".
				if sp := bytes.IndexByte(payload[v:end], ' '); sp > 0 {
					v += sp + 1
				}
			}
			changed = mask(payload[v:end]) || changed
			nl = end - 1
			break
		}
	}
	for from := 0; ; {
		i := bytes.Index(payload[from:], wsTokenPrefix)
		if i < 0 {
			break
		}
		start := from + i + len(wsTokenPrefix)
		end := start
		for end < len(payload) && payload[end] != ',' && payload[end] != ' ' && payload[end] != '\r' && payload[end] != '\n' {
			end++
		}
		changed = mask(payload[start:end]) || changed
		from = end
	}
	if changed {
		tcpframe.FixChecksum(frame)
	}
	return changed
}

// hasPrefixFold reports whether b starts with lower (lower-case ASCII),
// ignoring ASCII case in b.
func hasPrefixFold(b, lower []byte) bool {
	if len(b) < len(lower) {
		return false
	}
	for i, c := range lower {
		d := b[i]
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if d != c {
			return false
		}
	}
	return true
}

func mask(b []byte) bool {
	changed := false
	for i := range b {
		if b[i] != 'x' {
			b[i] = 'x'
			changed = true
		}
	}
	return changed
}
