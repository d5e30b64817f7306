package decode

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pftap/pftap/decode/tcpstream"
	"github.com/pftap/pftap/internal/preview"
)

// maxHTTPHeader bounds an HTTP/1.x message header.
const maxHTTPHeader = 64 << 10

// DefaultMaxBody is how much of an HTTP message body Events carry unless
// Options.MaxBody says otherwise.
const DefaultMaxBody = 4 << 10

type httpField struct{ name, value string }

// httpMsg is one parsed HTTP/1.x request or response header, with a prefix
// of its body once complete.
type httpMsg struct {
	response bool
	method   string
	target   string
	proto    string
	status   int
	reason   string
	fields   []httpField
	body     []byte
	bodyLen  int64
}

func (m *httpMsg) get(name string) string {
	for _, f := range m.fields {
		if strings.EqualFold(f.name, name) {
			return f.value
		}
	}
	return ""
}

// hasToken reports whether a comma-separated header contains tok.
func (m *httpMsg) hasToken(name, tok string) bool {
	for _, f := range m.fields {
		if !strings.EqualFold(f.name, name) {
			continue
		}
		for _, v := range strings.Split(f.value, ",") {
			if strings.EqualFold(strings.TrimSpace(v), tok) {
				return true
			}
		}
	}
	return false
}

type httpState uint8

const (
	hsHeader httpState = iota
	hsBody
	hsChunkSize
	hsChunkData
	hsChunkDataEnd
	hsTrailer
	hsUntilClose
)

var errNotHTTP = errors.New("not HTTP/1.x")

// httpParser parses one direction of an HTTP/1.x connection from pushed
// bytes. It stops after a message that may switch protocols and hands back
// the bytes that follow it.
type httpParser struct {
	response bool
	state    httpState
	buf      []byte
	cur      *httpMsg
	remain   int64
	// methods are the connection's requests not answered yet (shared by
	// its two directions' parsers), so a response to HEAD is known to
	// have no body.
	methods *[]string
	done    []*httpMsg
	// maxBody bounds the body kept per message.
	maxBody int
}

// feed consumes b. It returns the messages completed (header and body);
// when a message that may switch protocols completes its header, parsing
// stops and stop is true, with rest holding the bytes after that header.
func (p *httpParser) feed(b []byte) (msgs []*httpMsg, rest []byte, stop bool, err error) {
	p.done = p.done[:0]
	for len(b) > 0 {
		switch p.state {
		case hsHeader:
			p.buf = append(p.buf, b...)
			b = nil
			i := bytes.Index(p.buf, []byte("\r\n\r\n"))
			if i < 0 {
				if len(p.buf) > 0 && !looksLikeHTTP(p.buf, p.response) {
					return p.done, nil, false, errNotHTTP
				}
				if len(p.buf) > maxHTTPHeader {
					return p.done, nil, false, fmt.Errorf("HTTP header longer than %d bytes", maxHTTPHeader)
				}
				continue
			}
			m, perr := parseHTTPHeader(p.buf[:i], p.response)
			if perr != nil {
				return p.done, nil, false, perr
			}
			b = p.buf[i+4:]
			p.buf = nil
			p.cur = m
			if switchesProtocol(m) || p.tunnels(m) {
				if !m.response && m.method == methodConnect {
					*p.methods = append(*p.methods, m.method)
				}
				p.done = append(p.done, m)
				p.cur = nil
				return p.done, b, true, nil
			}
			p.startBody(m)
		case hsBody:
			n := min(int64(len(b)), p.remain)
			p.keep(b[:n])
			b = b[n:]
			p.remain -= n
			if p.remain == 0 {
				p.finish()
			}
		case hsUntilClose:
			p.keep(b)
			b = nil
		case hsChunkSize, hsChunkDataEnd, hsTrailer:
			p.buf = append(p.buf, b...)
			b = nil
			i := bytes.Index(p.buf, []byte("\r\n"))
			if i < 0 {
				if len(p.buf) > 4096 {
					return p.done, nil, false, errors.New("chunked body: line too long")
				}
				continue
			}
			line := string(p.buf[:i])
			b = p.buf[i+2:]
			p.buf = nil
			switch p.state {
			case hsChunkSize:
				if j := strings.IndexByte(line, ';'); j >= 0 {
					line = line[:j]
				}
				n, perr := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
				if perr != nil || n < 0 {
					return p.done, nil, false, fmt.Errorf("chunked body: bad chunk size %q", line)
				}
				if n == 0 {
					p.state = hsTrailer
				} else {
					p.remain = n
					p.state = hsChunkData
				}
			case hsChunkDataEnd:
				p.state = hsChunkSize
			case hsTrailer:
				if line == "" {
					p.finish()
				}
			}
		case hsChunkData:
			n := min(int64(len(b)), p.remain)
			p.keep(b[:n])
			b = b[n:]
			p.remain -= n
			if p.remain == 0 {
				p.state = hsChunkDataEnd
			}
		}
	}
	return p.done, nil, false, nil
}

func (p *httpParser) keep(b []byte) {
	p.cur.bodyLen += int64(len(b))
	if room := p.maxBody - len(p.cur.body); room > 0 {
		p.cur.body = append(p.cur.body, b[:min(room, len(b))]...)
	}
}

func (p *httpParser) startBody(m *httpMsg) {
	if !m.response {
		*p.methods = append(*p.methods, m.method)
	}
	noBody := false
	if m.response {
		method := ""
		if len(*p.methods) > 0 {
			method = (*p.methods)[0]
		}
		noBody = method == "HEAD" || m.status/100 == 1 || m.status == 204 || m.status == 304
	}
	switch {
	case noBody:
		p.finish()
	case strings.EqualFold(m.get("Transfer-Encoding"), "chunked") || m.hasToken("Transfer-Encoding", "chunked"):
		p.state = hsChunkSize
	case m.get("Content-Length") != "":
		n, err := strconv.ParseInt(strings.TrimSpace(m.get("Content-Length")), 10, 64)
		if err != nil || n < 0 {
			n = 0
		}
		p.remain = n
		if n == 0 {
			p.finish()
		} else {
			p.state = hsBody
		}
	case m.response:
		p.state = hsUntilClose
	default:
		p.finish()
	}
}

func (p *httpParser) finish() {
	p.done = append(p.done, p.cur)
	p.cur = nil
	p.state = hsHeader
}

// close ends the direction: a body read until close is complete.
func (p *httpParser) close() *httpMsg {
	if p.state == hsUntilClose && p.cur != nil {
		m := p.cur
		p.cur = nil
		p.state = hsHeader
		return m
	}
	return nil
}

// methodConnect is HTTP's CONNECT (decode does not import net/http).
const methodConnect = "CONNECT"

// tunnels says whether m opens a CONNECT tunnel: the CONNECT request
// (what follows waits for the answer), or a 2xx answer to it (what follows
// is the tunnel's, both ways).
func (p *httpParser) tunnels(m *httpMsg) bool {
	if !m.response {
		return m.method == methodConnect
	}
	return m.status/100 == 2 && len(*p.methods) > 0 && (*p.methods)[0] == methodConnect
}

func switchesProtocol(m *httpMsg) bool {
	if m.response {
		return m.status == 101
	}
	return m.get("Upgrade") != "" && m.hasToken("Connection", "upgrade")
}

var httpMethods = []string{"GET ", "POST ", "PUT ", "DELETE ", "HEAD ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "}

// looksLikeHTTP reports whether b can be the start of an HTTP/1.x message.
func looksLikeHTTP(b []byte, response bool) bool {
	if response {
		p := "HTTP/1."
		n := min(len(b), len(p))
		return string(b[:n]) == p[:n]
	}
	for _, m := range httpMethods {
		n := min(len(b), len(m))
		if string(b[:n]) == m[:n] {
			return true
		}
	}
	return false
}

func parseHTTPHeader(h []byte, response bool) (*httpMsg, error) {
	lines := strings.Split(string(h), "\r\n")
	m := &httpMsg{response: response}
	first := lines[0]
	if response {
		proto, rest, ok := strings.Cut(first, " ")
		if !ok || !strings.HasPrefix(proto, "HTTP/1.") {
			return nil, fmt.Errorf("bad HTTP status line %.80q", first)
		}
		code, reason, _ := strings.Cut(rest, " ")
		n, err := strconv.Atoi(code)
		if err != nil || n < 100 || n > 999 {
			return nil, fmt.Errorf("bad HTTP status line %.80q", first)
		}
		m.proto, m.status, m.reason = proto, n, reason
	} else {
		parts := strings.Split(first, " ")
		if len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/1.") {
			return nil, fmt.Errorf("bad HTTP request line %.80q", first)
		}
		m.method, m.target, m.proto = parts[0], parts[1], parts[2]
	}
	for _, l := range lines[1:] {
		if l == "" {
			continue
		}
		if (l[0] == ' ' || l[0] == '\t') && len(m.fields) > 0 {
			m.fields[len(m.fields)-1].value += " " + strings.TrimSpace(l)
			continue
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			return nil, fmt.Errorf("bad HTTP header line %.80q", l)
		}
		m.fields = append(m.fields, httpField{strings.TrimSpace(name), strings.TrimSpace(value)})
	}
	return m, nil
}

// httpMessage reports one HTTP message and follows upgrades.
func (cs *connState) httpMessage(dir tcpstream.Dir, t time.Time, m *httpMsg) {
	d := cs.d
	e := &Event{Time: t, Dir: dirOf(dir), HTTPHeader: cs.headerMap(m)}
	if len(m.body) > 0 {
		e.Body = string(m.body)
	}
	if !m.response {
		e.Kind = KindHTTPRequest
		e.Method, e.Path = m.method, m.target
		e.Namespace, e.Pod = parsePodPath(m.target)
		txt := m.method + " " + m.target
		if up := m.get("Upgrade"); up != "" && switchesProtocol(m) {
			cs.upgrade, cs.upAt = m, t
			txt += "  upgrade=" + up
			if v := m.get("X-Stream-Protocol-Version"); v != "" {
				txt += " stream-protocols=" + joinValues(m, "X-Stream-Protocol-Version")
			}
			if v := m.get("Sec-WebSocket-Protocol"); v != "" {
				txt += " ws-protocols=" + redactWSProtocols(v, d.opts.ShowSecrets)
			}
		}
		if a := m.get("Authorization"); a != "" {
			txt += "  auth=" + redactAuth(a, d.opts.ShowSecrets)
		}
		e.Text = txt
		d.send(0, cs, e)
		return
	}
	connect := len(cs.methods) > 0 && cs.methods[0] == methodConnect
	if len(cs.methods) > 0 {
		cs.methods = cs.methods[1:]
	}
	e.Kind = KindHTTPResponse
	e.Status = m.status
	txt := fmt.Sprintf("%d %s", m.status, m.reason)
	if connect {
		if m.status/100 == 2 {
			// The tunnel: what follows, both ways, is read afresh (TLS,
			// as a rule).
			cs.tunnelled = true
			e.Protocol = "tunnel"
			e.Text = txt + "  → CONNECT tunnel"
			d.send(0, cs, e)
			return
		}
		e.Protocol = "tunnel refused"
		if held := cs.releaseClient(); len(held) > 0 {
			defer cs.dirs[tcpstream.ClientToServer].data(cs, tcpstream.ClientToServer, 0, t, held)
		}
	}
	req := cs.upgrade
	cs.upgrade = nil
	if m.status == 101 {
		d.sum.Upgrades++
		if req != nil {
			e.DurationNS = ptr(int64(t.Sub(cs.upAt)))
		}
		up := m.get("Upgrade")
		switch {
		case strings.EqualFold(up, "websocket"):
			cs.proto = "websocket"
			cs.subprot = m.get("Sec-WebSocket-Protocol")
			cs.pf.setWSProtocol(cs.subprot)
			e.Protocol = "websocket " + cs.subprot
			txt += "  → WebSocket, subprotocol " + preview.Token(cs.subprot, 60)
			if cs.pf.tunnel {
				txt += " (SPDY/3.1 tunnelled in binary messages)"
			}
		default:
			cs.proto = up
			e.Protocol = up
			txt += "  → " + up
			if v := m.get("X-Stream-Protocol-Version"); v != "" {
				txt += " (" + v + ")"
				e.Protocol += " " + v
			}
		}
		if req != nil {
			txt += ", after " + fmtDur(t.Sub(cs.upAt))
		}
		e.Text = txt
		d.send(0, cs, e)
		cs.holdClient()
		return
	}
	if req != nil {
		d.sum.FailedUpgrade++
		txt += "  upgrade refused"
		if v := m.get("X-Accepted-Stream-Protocol-Versions"); v != "" {
			txt += "; server accepts " + v
		}
		// The client may go on with plain HTTP on this connection.
		if held := cs.releaseClient(); len(held) > 0 {
			// Fed to the request's layer again, not reported as chunks twice.
			defer cs.dirs[tcpstream.ClientToServer].data(cs, tcpstream.ClientToServer, 0, t, held)
		}
	}
	switch {
	case m.status >= 300 && len(m.body) > 0:
		txt += ": " + preview.Bytes(statusMessage(m.body), 200)
	case m.bodyLen > 0:
		ct := m.get("Content-Type")
		if ct == "" {
			ct = "body"
		}
		txt += fmt.Sprintf("  (%s, %d bytes)", ct, m.bodyLen)
	}
	e.Text = txt
	d.send(0, cs, e)
}
