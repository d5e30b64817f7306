package capture

import (
	"bytes"
	"encoding/binary"
	"github.com/pftap/pftap/internal/secret"
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
	tcp, pseudo, ok := tcpSegment(frame)
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
		binary.BigEndian.PutUint16(tcp[16:], 0)
		binary.BigEndian.PutUint16(tcp[16:], fold(sum(tcp, pseudo)))
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

// tcpSegment finds the TCP segment of an Ethernet frame and the pseudo
// header's sum for its checksum.
func tcpSegment(f []byte) (tcp []byte, pseudo uint32, ok bool) {
	if len(f) < 14 {
		return nil, 0, false
	}
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		ip := f[14:]
		if len(ip) < 20 || ip[9] != 6 {
			return nil, 0, false
		}
		ihl := int(ip[0]&0xf) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if ihl < 20 || total < ihl || total > len(ip) {
			return nil, 0, false
		}
		tcp = ip[ihl:total]
		return tcp, sum(ip[12:20], 0) + uint32(len(tcp)) + 6, true
	case 0x86dd:
		ip := f[14:]
		if len(ip) < 40 || ip[6] != 6 {
			return nil, 0, false
		}
		n := int(binary.BigEndian.Uint16(ip[4:]))
		if 40+n > len(ip) {
			return nil, 0, false
		}
		tcp = ip[40 : 40+n]
		return tcp, sum(ip[8:40], 0) + uint32(n) + 6, true
	}
	return nil, 0, false
}
