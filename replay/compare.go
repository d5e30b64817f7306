package replay

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// dateLine matches an HTTP Date header line: the one header of a response
// that differs every time the same server answers the same request.
var dateLine = regexp.MustCompile(`(?mi)^date:[^\r\n]*`)

// hostLine matches a request's Host header naming a port-forward's local
// end (127.0.0.1, localhost, [::1]): its port is whichever the user
// picked; uaLine its User-Agent: the user's HTTP client, not the session.
var (
	hostLine = regexp.MustCompile(`(?mi)^host:[ \t]*(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?[ \t]*\r?$`)
	uaLine   = regexp.MustCompile(`(?mi)^user-agent:[^\r\n]*`)
)

// normalize prepares bytes for comparison in the given mode: in semantic
// mode, what differs every time the same session is played with another
// local port or HTTP client is masked (the response's Date, the
// request's Host port on the loopback and its User-Agent).
func normalize(m Mode, b []byte) []byte {
	if m == Strict || !bytes.Contains(b, []byte("HTTP/1.")) {
		return b
	}
	b = dateLine.ReplaceAll(b, []byte("Date: (masked)"))
	b = hostLine.ReplaceAll(b, []byte("Host: $1:(port masked)"))
	return uaLine.ReplaceAll(b, []byte("User-Agent: (masked)"))
}

// sameBytes compares recorded with received bytes in mode m.
func sameBytes(m Mode, want, got []byte) bool {
	return bytes.Equal(normalize(m, want), normalize(m, got))
}

// diffBytes renders recorded (-) against received (+): a line diff when both
// are text, otherwise the first differing offset with hex around it.
func diffBytes(m Mode, want, got []byte) string {
	want, got = normalize(m, want), normalize(m, got)
	if isText(want) && isText(got) {
		return diffLines(string(want), string(got))
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	lo := max(0, i-8)
	return fmt.Sprintf("recorded %d bytes, received %d; first difference at byte %d\n- % x\n+ % x\n",
		len(want), len(got), i, want[lo:min(len(want), i+16)], got[lo:min(len(got), i+16)])
}

func isText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' {
			return false
		}
	}
	return true
}

// diffLines is a line diff (longest common subsequence) with two lines of
// context; long inputs are cut to their first differing region.
func diffLines(want, got string) string {
	a := splitLines(want)
	b := splitLines(got)
	// Trim the common head and tail, keeping context.
	head := 0
	for head < len(a) && head < len(b) && a[head] == b[head] {
		head++
	}
	tail := 0
	for tail < len(a)-head && tail < len(b)-head && a[len(a)-1-tail] == b[len(b)-1-tail] {
		tail++
	}
	const ctx, limit = 2, 400
	start := max(0, head-ctx)
	am, bm := a[head:len(a)-tail], b[head:len(b)-tail]
	cut := false
	if len(am) > limit {
		am, cut = am[:limit], true
	}
	if len(bm) > limit {
		bm, cut = bm[:limit], true
	}
	var out strings.Builder
	for _, l := range a[start:head] {
		out.WriteString("  " + l + "\n")
	}
	// LCS table over the differing middle.
	n, k := len(am), len(bm)
	dp := make([][]int, n+1)
	for i := range dp {
		dp[i] = make([]int, k+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := k - 1; j >= 0; j-- {
			if am[i] == bm[j] {
				dp[i][j] = dp[i+1][j+1] + 1
			} else {
				dp[i][j] = max(dp[i+1][j], dp[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < n || j < k {
		switch {
		case i < n && j < k && am[i] == bm[j]:
			out.WriteString("  " + am[i] + "\n")
			i++
			j++
		case i < n && (j == k || dp[i+1][j] >= dp[i][j+1]):
			out.WriteString("- " + am[i] + "\n")
			i++
		default:
			out.WriteString("+ " + bm[j] + "\n")
			j++
		}
	}
	if cut {
		out.WriteString("  ... (diff cut)\n")
	}
	end := len(a) - tail
	for _, l := range a[end:min(len(a), end+ctx)] {
		out.WriteString("  " + l + "\n")
	}
	return out.String()
}

// splitLines splits on \n, showing a line's \r and a missing final newline.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	parts := strings.SplitAfter(s, "\n")
	if parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	quote := func(s string) string { q := strconv.Quote(s); return q[1 : len(q)-1] }
	for i, p := range parts {
		switch {
		case strings.HasSuffix(p, "\r\n"):
			p = quote(strings.TrimSuffix(p, "\r\n")) + `\r`
		case strings.HasSuffix(p, "\n"):
			p = quote(strings.TrimSuffix(p, "\n"))
		default:
			p = quote(p) + "  (no newline at end)"
		}
		parts[i] = p
	}
	return parts
}

// httpMessages counts the complete HTTP/1.x messages at the start of b
// (header, and a body of Content-Length bytes). ok is false when b is not
// a sequence of whole messages.
func httpMessages(b []byte) (n int, ok bool) {
	for len(b) > 0 {
		if !bytes.HasPrefix(b, []byte("HTTP/1.")) && !looksLikeRequestLine(b) {
			return n, false
		}
		end := bytes.Index(b, []byte("\r\n\r\n"))
		if end < 0 {
			return n, false
		}
		head := b[:end]
		b = b[end+4:]
		cl := 0
		for _, l := range bytes.Split(head, []byte("\r\n")) {
			if k, v, found := bytes.Cut(l, []byte(":")); found && strings.EqualFold(string(bytes.TrimSpace(k)), "content-length") {
				cl, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
			}
		}
		if cl > len(b) {
			return n, false
		}
		b = b[cl:]
		n++
	}
	return n, true
}

func looksLikeRequestLine(b []byte) bool {
	sp := bytes.IndexByte(b, ' ')
	if sp <= 0 || sp > 10 {
		return false
	}
	for _, c := range b[:sp] {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
