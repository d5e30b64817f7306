package capture

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/pftap/pftap/internal/tcpframe"

	"github.com/pftap/pftap/internal/secret"
)

func TestRedactFrame(t *testing.T) {
	src, dst := netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.2:6443")
	payload := "POST /api/v1/namespaces/default/pods/nginx/portforward HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cr3t-token\r\n" +
		"Cookie: a=b\r\nSec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io,base64url.bearer.authorization.k8s.io.dG9rZW4\r\n\r\n"
	for _, v6 := range []bool{false, true} {
		s, d := src, dst
		if v6 {
			s, d = netip.MustParseAddrPort("[fd00::1]:40000"), netip.MustParseAddrPort("[fd00::2]:6443")
		}
		f := tcpframe.Append(nil, s, d, 1, 1, tcpframe.FlagACK|tcpframe.FlagPSH, []byte(payload))
		if !RedactFrame(f) {
			t.Fatal("nothing redacted")
		}
		for _, secret := range []string{"s3cr3t-token", "a=b", "dG9rZW4"} {
			if bytes.Contains(f, []byte(secret)) {
				t.Errorf("v6=%v: %q is still in the frame", v6, secret)
			}
		}
		if !bytes.Contains(f, []byte("Authorization: Bearer xxxxxxxxxxxx\r\n")) {
			t.Errorf("v6=%v: the scheme or the length changed:\n%s", v6, f)
		}
		if RedactFrame(f) {
			t.Error("a second pass changed the frame again")
		}
		if got := checksumOK(f); !got {
			t.Errorf("v6=%v: bad TCP checksum after redaction", v6)
		}
	}
	// The check itself catches a payload changed without a new checksum.
	bad := tcpframe.Append(nil, src, dst, 1, 1, tcpframe.FlagACK, []byte("GET / HTTP/1.1\r\n\r\n"))
	if !checksumOK(bad) {
		t.Fatal("checksumOK rejects a good frame")
	}
	bad[len(bad)-5] ^= 0x20
	if checksumOK(bad) {
		t.Fatal("checksumOK accepts a changed payload")
	}
	plain := tcpframe.Append(nil, src, dst, 1, 1, tcpframe.FlagACK, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	if RedactFrame(plain) {
		t.Error("a frame without credentials was changed")
	}
}

// checksumOK verifies the TCP checksum of a frame.
func checksumOK(f []byte) bool { return tcpframe.ChecksumOK(f) }

// TestRedactFrameBinaryAndCase: header names in any case, a header line
// after bytes that are not UTF-8 (SPDY frames carry HTTP inside binary
// framing: a case-folding copy of such bytes changes their length and
// would mask the wrong place), two credentials on one frame.
func TestRedactFrameBinaryAndCase(t *testing.T) {
	src, dst := netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.2:6443")
	payload := "\x80\x03\x00\x01\xff\xfe\xc3\x28 binary\nPROXY-AUTHORIZATION: Basic dXNlcjpwYXNz\r\nX-Other: keep\r\nset-COOKIE: id=42\r\n\r\nbody authorization: not a header line"
	f := tcpframe.Append(nil, src, dst, 1, 1, tcpframe.FlagACK, []byte(payload))
	if !RedactFrame(f) {
		t.Fatal("nothing redacted")
	}
	for _, secret := range []string{"dXNlcjpwYXNz", "id=42"} {
		if bytes.Contains(f, []byte(secret)) {
			t.Errorf("%q is still in the frame", secret)
		}
	}
	for _, kept := range []string{"\x80\x03\x00\x01\xff\xfe\xc3\x28 binary\n", "PROXY-AUTHORIZATION: Basic xxxxxxxxxxxx\r\n", "X-Other: keep\r\n", "body authorization: not a header line"} {
		if !bytes.Contains(f, []byte(kept)) {
			t.Errorf("%q changed:\n%q", kept, f)
		}
	}
	if !checksumOK(f) {
		t.Error("bad TCP checksum after redaction")
	}
}

// BenchmarkRedactFrameBulk: a full-size segment of bulk data, as most of
// a transfer's frames are (pftap lab -w and pftap trace redact every one).
func BenchmarkRedactFrameBulk(b *testing.B) {
	src, dst := netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.2:6443")
	payload := make([]byte, 65000)
	for i := range payload {
		payload[i] = byte(i*131 + i>>8)
	}
	f := tcpframe.Append(nil, src, dst, 1, 1, tcpframe.FlagACK, payload)
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		RedactFrame(f)
	}
}

// TestRedactFrameEveryHeader: every credential header of secret.Headers is
// hidden in a recorded frame (the decoder hides the same list on screen),
// Authorization-like ones after their scheme word.
func TestRedactFrameEveryHeader(t *testing.T) {
	src, dst := netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.2:6443")
	for _, h := range secret.Headers {
		f := tcpframe.Append(nil, src, dst, 1, 1, tcpframe.FlagACK|tcpframe.FlagPSH, []byte("GET / HTTP/1.1\r\nHost: x\r\n"+h+": Scheme value-s3cret\r\n\r\n"))
		RedactFrame(f)
		if bytes.Contains(f, []byte("s3cret")) {
			t.Errorf("%s: the value is still in the frame", h)
		}
		if kept := bytes.Contains(f, []byte(": Scheme ")); kept != secret.KeepsScheme(h) {
			t.Errorf("%s: scheme kept = %v", h, kept)
		}
	}
}
