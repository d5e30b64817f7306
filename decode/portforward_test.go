package decode

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pftap/pftap/decode/spdy"
	"github.com/pftap/pftap/decode/tcpstream"
)

// factLog is a pfSink that writes each fact down, with no decoder, no
// events and no sentences behind it.
type factLog struct{ facts []string }

func (l *factLog) add(format string, args ...any) {
	l.facts = append(l.facts, fmt.Sprintf(format, args...))
}
func (l *factLog) pfOpened(o pfOpened) {
	l.add("opened %d %s port=%d req=%s reused=%v half=%v", o.Stream, o.Type, o.Port, o.RequestID, o.Reused, o.HalfClosed)
}
func (l *factLog) pfOrphan(at pfAt, stream uint32) { l.add("orphan %d", stream) }
func (l *factLog) pfChunk(at pfAt, ref pfRef, offset int64, b chunkBytes) {
	l.add("chunk %d %s @%d %q", ref.Stream, at.Dir, offset, b.Data)
}
func (l *factLog) pfData(d pfData)      { l.add("data %d %s line=%q", d.Stream, d.Dir, d.Line) }
func (l *factLog) pfErrorText(d pfData) { l.add("error %d %q", d.Stream, d.B) }
func (l *factLog) pfReset(r pfReset)    { l.add("reset %d %v tidy=%v", r.Stream, r.Status, r.Tidy) }
func (l *factLog) pfPing(p pfPing)      { l.add("ping %d echo=%v timed=%v", p.ID, p.Echo, p.Timed) }
func (l *factLog) pfGoAway(at pfAt, lastGood uint32, status spdy.GoAwayStatus) {
	l.add("goaway %d", lastGood)
}
func (l *factLog) pfEnded(r pfEnded) {
	l.add("ended %s port=%d to=%d from=%d err=%q reset=%q why=%q replied=%v", r.ID, r.Port, r.ToPod, r.FromPod, r.ErrText, r.Reset, r.Why, r.Replied)
}
func (l *factLog) pfChannelPort(at pfAt, ch byte, kind string, port int) {
	l.add("channel %d %s %d", ch, kind, port)
}
func (l *factLog) pfChannelError(at pfAt, port int, text []byte) { l.add("channel error %q", text) }
func (l *factLog) pfChannelData(at pfAt, port int, line string, n int) {
	l.add("channel data %q", line)
}
func (l *factLog) pfBadMessage(at pfAt, err error) { l.add("bad %v", err) }

// TestPortForwardFacts drives the port-forward layer with typed SPDY
// frames alone and reads the typed facts it reports: two requests (one
// answered, one refused by the runtime), a ping and its echo, GOAWAY.
func TestPortForwardFacts(t *testing.T) {
	log := &factLog{}
	pf := &pfSession{sink: log}
	t0 := time.Unix(1700000000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	c2s, s2c := tcpstream.ClientToServer, tcpstream.ServerToClient
	hdr := func(typ spdy.FrameType, id uint32, fin bool) spdy.FrameHeader {
		h := spdy.FrameHeader{Control: typ != spdy.TypeData, Version: 3, Type: typ, StreamID: id}
		if fin {
			h.Flags = spdy.FlagFin
		}
		return h
	}
	open := func(ms int, id uint32, typ, req string) {
		pf.frame(c2s, at(ms), 0, &spdy.SynStreamFrame{FrameHeader: hdr(spdy.TypeSynStream, id, typ == "error"),
			Headers: spdy.Headers{{Name: "streamtype", Value: typ}, {Name: "port", Value: "80"}, {Name: "requestid", Value: req}}})
	}
	data := func(dir tcpstream.Dir, ms int, id uint32, b string, fin bool) {
		pf.frame(dir, at(ms), 0, &spdy.DataFrame{FrameHeader: hdr(spdy.TypeData, id, fin), Data: []byte(b)})
	}
	open(1, 1, "error", "0")
	open(2, 3, "data", "0")
	pf.frame(s2c, at(3), 0, &spdy.SynReplyFrame{FrameHeader: hdr(spdy.TypeSynReply, 3, false)})
	data(c2s, 4, 3, "GET / HTTP/1.1\r\n\r\n", false)
	data(s2c, 5, 3, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true)
	data(c2s, 6, 3, "", true)
	pf.frame(s2c, at(7), 0, &spdy.SynReplyFrame{FrameHeader: hdr(spdy.TypeSynReply, 1, true)})
	open(8, 5, "error", "1")
	open(9, 7, "data", "1")
	data(s2c, 10, 5, "failed to connect to localhost:81", true)
	pf.frame(s2c, at(11), 0, &spdy.RstStreamFrame{FrameHeader: hdr(spdy.TypeRstStream, 7, false), Status: spdy.RstCancel})
	pf.frame(c2s, at(12), 0, &spdy.PingFrame{FrameHeader: hdr(spdy.TypePing, 0, false), ID: 1})
	pf.frame(s2c, at(13), 0, &spdy.PingFrame{FrameHeader: hdr(spdy.TypePing, 0, false), ID: 1})
	pf.frame(s2c, at(14), 0, &spdy.GoAwayFrame{FrameHeader: hdr(spdy.TypeGoAway, 0, false), LastGoodStreamID: 7})
	pf.finish(at(15), "connection closed")

	want := []string{
		"opened 1 error port=80 req=0 reused=false half=true",
		"opened 3 data port=80 req=0 reused=false half=false",
		`chunk 3 c>s @0 "GET / HTTP/1.1\r\n\r\n"`,
		`data 3 c>s line="GET / HTTP/1.1"`,
		`chunk 3 s>c @0 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"`,
		`data 3 s>c line="HTTP/1.1 200 OK"`,
		`ended 0 port=80 to=18 from=40 err="" reset="" why="" replied=true`,
		"opened 5 error port=80 req=1 reused=false half=true",
		"opened 7 data port=80 req=1 reused=false half=false",
		`error 5 "failed to connect to localhost:81"`,
		"reset 7 CANCEL tidy=false",
		`ended 1 port=80 to=0 from=0 err="failed to connect to localhost:81" reset="data stream reset by server (CANCEL)" why="" replied=false`,
		"ping 1 echo=false timed=false",
		"ping 1 echo=true timed=true",
		"goaway 7",
	}
	if got := strings.Join(log.facts, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("facts:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}
