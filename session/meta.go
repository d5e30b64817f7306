package session

import (
	"errors"

	"encoding/json"
	"strings"
	"time"
)

// MetaPrefix starts the comment line that carries what a session knew
// (JSON), so that `pftap replay` renders a recording as `pftap lab` did
// live: in the section header, what is known at the start (the chain);
// in the first leg's Interface Statistics Block, what is known at the end
// (the requests' results, the app's log, the drops).
const MetaPrefix = "pftap-lab-meta: "

// Meta is that JSON.
type Meta struct {
	Header   string   `json:"header"`
	PodNetns string   `json:"pod_netns"`
	Results  []Result `json:"results,omitempty"`
	// Drops are the kernel's drops per leg, in interface order.
	Drops  []uint64     `json:"drops,omitempty"`
	AppLog []AppRequest `json:"app_log,omitempty"`
	// ClientLog and Client are Description's.
	ClientLog []string `json:"client_log,omitempty"`
	Client    Client   `json:"client,omitempty"`
	// Facts are Description's: what ran.
	Facts *Facts `json:"facts,omitempty"`
}

// Result is what one request through the port-forward got.
type Result struct {
	What   string `json:"what"`
	Status string `json:"status,omitempty"`
	Bytes  int64  `json:"bytes"`
	TookNS int64  `json:"took_ns"`
	Error  string `json:"error,omitempty"`
	// Interrupted: the session was stopped while the request was under
	// way (RequestResult.Interrupted).
	Interrupted bool `json:"interrupted,omitempty"`
}

// AppRequest is one request the app in the pod logged: which connection
// on the pod's lo asked for what (lab.AppRequest has the same fields).
type AppRequest struct {
	Time   time.Time
	Remote string
	Method string
	Path   string
	Bytes  int64
}

// Encode is the comment line for m.
func (m Meta) Encode() string {
	b, _ := json.Marshal(m)
	return MetaPrefix + string(b)
}

// DecodeMeta finds a session's metadata in a comment (the section
// header's, or the first leg's statistics'); recordings made before the
// file was written as it goes hold all of it in the section header.
func DecodeMeta(comment string) (Meta, bool) {
	for _, line := range strings.Split(comment, "\n") {
		rest, ok := strings.CutPrefix(line, MetaPrefix)
		if !ok {
			continue
		}
		var m Meta
		if json.Unmarshal([]byte(rest), &m) != nil {
			return Meta{}, false
		}
		return m, true
	}
	return Meta{}, false
}

// EndMeta is what a recording can say only at the end: the requests'
// results, the app's log, each leg's drops.
func EndMeta(d Description, results []RequestResult, drops []uint64) Meta {
	m := Meta{Drops: drops, ClientLog: d.ClientLog, Client: d.Client, AppLog: d.AppLog}
	for _, res := range results {
		mr := Result{What: res.What, Status: res.Status, Bytes: res.Bytes, TookNS: int64(res.Took), Interrupted: res.Interrupted}
		if res.Err != nil {
			mr.Error = res.Err.Error()
		}
		m.Results = append(m.Results, mr)
	}
	return m
}

// RequestResults are the requests' results m holds.
func (m Meta) RequestResults() []RequestResult {
	var out []RequestResult
	for _, r := range m.Results {
		rr := RequestResult{What: r.What, Status: r.Status, Bytes: r.Bytes, Took: time.Duration(r.TookNS), Interrupted: r.Interrupted}
		if r.Error != "" {
			rr.Err = errors.New(r.Error)
		}
		out = append(out, rr)
	}
	return out
}

// Description is the session's description as m holds it (its start:
// the header and the pod's namespace; its end: the app's log).
func (m Meta) Description() Description {
	d := Description{Header: m.Header, PodNetns: m.PodNetns, ClientLog: m.ClientLog, Client: m.Client}
	if m.Facts != nil {
		d.Facts = *m.Facts
	}
	for _, a := range m.AppLog {
		d.AppLog = append(d.AppLog, a)
	}
	return d
}
