package main

import (
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pftap/pftap/internal/testenv"
)

// TestHTMLInHeadlessChromium opens the sequence diagram of a recording in
// Debian's chromium, offline: it must load without console messages, and a
// screenshot must show the lanes and coloured arrows.
func TestHTMLInHeadlessChromium(t *testing.T) {
	browser := testenv.NeedTool(t, "chromium", "chromium")
	dir := t.TempDir()
	page := filepath.Join(dir, "session.html")
	ios, _, _ := testIO()
	if err := decodeRun(&DecodeOptions{IO: ios, File: filepath.Join(recordings, "spdy-concurrent.pcapng"), HTML: page}); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "shot.png")
	cmd := exec.Command(browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--enable-logging=stderr", "--v=0", "--window-size=1400,900", "--screenshot="+shot, "file://"+page)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, ":CONSOLE") {
			t.Errorf("console message: %s", line)
		}
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// Count pixels of the lane colour (#9ab) and pixels that are clearly
	// the blue of stream arrows or the green of data arrows (anti-aliased
	// lines blend with the background, so classify by hue).
	found := map[string]int{}
	bnd := img.Bounds()
	for y := bnd.Min.Y; y < bnd.Max.Y; y++ {
		for x := bnd.Min.X; x < bnd.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			r, g, b = r>>8, g>>8, b>>8
			switch {
			case near(r, 0x99) && near(g, 0xaa) && near(b, 0xbb):
				found["lane"]++
			case b > r+80 && b > g+40:
				found["stream"]++
			case g > r+60 && g > b+30:
				found["data"]++
			}
		}
	}
	for _, name := range []string{"lane", "stream", "data"} {
		if found[name] < 200 {
			t.Errorf("the screenshot shows %d pixels of the %s colour: %v", found[name], name, found)
		}
	}
}

func near(a, b uint32) bool { return a+12 >= b && a <= b+12 }
