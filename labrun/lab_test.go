//go:build linux

package labrun

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pftap/pftap/decode"
	"github.com/pftap/pftap/internal/testenv"
	"github.com/pftap/pftap/leg"
	"github.com/pftap/pftap/session"
)

// TestLabSession runs a lab session through the package's API as pftap lab
// does (events beside Run, the recording closed at the end) and reads the
// recording back: the events carry every leg's ID, the result holds the
// request's bytes and the app's log, and the file holds the same legs by
// ID and the same results.
func TestLabSession(t *testing.T) {
	testenv.NeedRoot(t, "builds a lab in network namespaces")
	path := filepath.Join(t.TempDir(), "s.pcapng")
	s, err := StartLab(context.Background(), LabOptions{Runtime: "cri-streaming", App: "builtin",
		Requests: []session.Request{{Method: "GET", Path: "/bytes?n=100000"}, {Method: "GET", Path: "/"}}, Concurrency: 1, Write: path})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[leg.ID]int{}
	done := make(chan session.Decoded)
	go func() { done <- s.Events(func(e *decode.Event) { seen[e.LegID]++ }) }()
	res, err := s.Run()
	if err != nil {
		t.Fatal(err)
	}
	dec := <-done
	rec, err := s.Close(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != 2 || res.Results[0].Err != nil || res.Results[0].Bytes != 100000 || res.Results[1].Err != nil {
		t.Fatalf("results %+v", res.Results)
	}
	if len(res.Description.AppLog) != 2 || len(res.Drops) != len(s.Legs()) {
		t.Errorf("app log %+v, drops %v for %d legs", res.Description.AppLog, res.Drops, len(s.Legs()))
	}
	for _, id := range []leg.ID{leg.User, leg.L1, leg.L2, leg.L2Wire, leg.L3, leg.L4} {
		if seen[id] == 0 {
			t.Errorf("no event on leg %s (%v)", id, seen)
		}
	}
	if dec.Summary.Requests != 2 || len(dec.Correlator.Result()) != 2 {
		t.Errorf("decoded %d requests, correlated %d", dec.Summary.Requests, len(dec.Correlator.Result()))
	}
	if rec.Path != path || rec.Packets == 0 {
		t.Fatalf("recording %+v", rec)
	}
	f, err := session.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !f.IsLab || f.Start.Header != s.Description().Header {
		t.Errorf("start meta %+v", f.Start)
	}
	for i, l := range s.Legs() {
		if i >= len(f.Legs) || f.Legs[i].ID != l.ID || f.Legs[i].Name != l.Name {
			t.Errorf("leg %d: recorded %+v, ran %+v", i, f.Legs, l)
			break
		}
	}
	if _, err := f.Decode(0, func(*decode.Event) {}); err != nil {
		t.Fatal(err)
	}
	end, ok := f.End()
	if !ok || len(end.Results) != 2 || end.Results[0].Bytes != 100000 || len(end.AppLog) != 2 {
		t.Errorf("end meta %+v (%v)", end, ok)
	}
}

// TestLabSessionNoTaps: with every tap left out the same requests pass,
// nothing is decoded or recorded, and Events returns at once.
func TestLabSessionNoTaps(t *testing.T) {
	testenv.NeedRoot(t, "builds a lab in network namespaces")
	path := filepath.Join(t.TempDir(), "none.pcapng")
	s, err := StartLab(context.Background(), LabOptions{Runtime: "cri-streaming", App: "builtin",
		Requests: []session.Request{{Method: "GET", Path: "/"}}, Concurrency: 1, Write: path, Taps: NoTaps})
	if err != nil {
		t.Fatal(err)
	}
	if s.Decodes() {
		t.Error("a session with no taps decodes")
	}
	if d := s.Events(func(*decode.Event) { t.Error("an event with no taps") }); d.Summary.Packets != 0 || len(d.Correlator.Result()) != 0 {
		t.Errorf("decoded %+v", d)
	}
	res, err := s.Run()
	if err != nil || len(res.Results) != 1 || res.Results[0].Err != nil {
		t.Fatalf("%v %+v", err, res.Results)
	}
	if rec, err := s.Close(nil); err != nil || rec.Path != "" {
		t.Errorf("recorded %+v, %v", rec, err)
	}
	if s.pipe.Counted() != 0 {
		t.Errorf("counted %d bytes with no taps", s.pipe.Counted())
	}
}
