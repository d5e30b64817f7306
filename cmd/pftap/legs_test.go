package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/pftap/pftap/capture"
	"github.com/pftap/pftap/leg"
)

// TestLegsRenamedKeepTheirPlace: a recording whose legs are renamed (here
// to "hop 0", "hop 1", ...) renders as the original does, because legs are
// known by their IDs, never by their names: the same per-hop chain, the
// eth0 explanation, the same HTML diagram.
func TestLegsRenamedKeepTheirPlace(t *testing.T) {
	orig := filepath.Join(replays, "spdy-get.pcapng")
	renamed := filepath.Join(t.TempDir(), "renamed.pcapng")
	f, err := os.Open(orig)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ng, err := pcapgo.NewNgReader(f, pcapgo.NgReaderOptions{WantMixedLinkType: true})
	if err != nil {
		t.Fatal(err)
	}
	w, err := capture.Create(renamed, ng.SectionInfo().Comment)
	if err != nil {
		t.Fatal(err)
	}
	added, frames := 0, 0
	for {
		data, ci, err := ng.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for ; added < ng.NInterfaces(); added++ {
			ni, _ := ng.Interface(added)
			l := leg.Parse(ni.Name, ni.Description)
			if _, err := w.AddLeg(capture.Leg{Leg: leg.Leg{ID: l.ID, Name: fmt.Sprintf("hop %d", added), Description: l.Description}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.WritePacket(ci.InterfaceIndex, ci.Timestamp, data, ci.Length, ""); err != nil {
			t.Fatal(err)
		}
		frames++
	}
	if err := w.Close(); err != nil || frames == 0 {
		t.Fatalf("%d frames: %v", frames, err)
	}
	render := func(file string) (string, string) {
		html := filepath.Join(t.TempDir(), "d.html")
		ios, out, errOut := testIO()
		if code := run([]string{"replay", "--no-color", "--html", html, file}, ios); code != exitOK {
			t.Fatalf("replay %s: exit %d: %s", file, code, errOut)
		}
		b, _ := os.ReadFile(html)
		return out.String(), string(b)
	}
	o1, h1 := render(orig)
	o2, h2 := render(renamed)
	if !strings.Contains(o2, "why tcpdump on the pod's eth0 shows nothing: eth0 saw 0 packets of this traffic, the pod's lo") {
		t.Errorf("the renamed recording lost the witness explanation:\n%s", o2)
	}
	chain := regexp.MustCompile(`(?m)^  request 0  → pod \d+ B: (.*)\(`)
	c1, c2 := chain.FindStringSubmatch(o1), chain.FindStringSubmatch(o2)
	if c1 == nil || c2 == nil {
		t.Fatalf("no per-hop chain:\n%s\n%s", o1, o2)
	}
	// The same hops in the same order, only named differently.
	hops := regexp.MustCompile(` ─([^ ]+)→ `)
	if fmt.Sprint(hops.FindAllStringSubmatch(c1[1], -1)) != fmt.Sprint(hops.FindAllStringSubmatch(c2[1], -1)) ||
		strings.Count(c2[1], "hop ") != 6 {
		t.Errorf("per-hop chains differ:\n%s\n%s", c1[1], c2[1])
	}
	arrows := regexp.MustCompile(`<line `)
	if n1, n2 := len(arrows.FindAllString(h1, -1)), len(arrows.FindAllString(h2, -1)); n1 == 0 || n1 != n2 {
		t.Errorf("HTML: %d lines in the original, %d renamed", n1, n2)
	}
}
