//go:build linux

package capture

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pftap/pftap/decode/packet"
)

// TestKilledCaptureLeavesReadableFile kills `pftap capture -w` with SIGKILL
// mid-capture: the pcapng must be readable by tshark and by pftap up to the
// last packet, since every block is flushed as it is written.
func TestKilledCaptureLeavesReadableFile(t *testing.T) {
	needTshark(t)
	ns := testPod(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "pftap")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/pftap/pftap/cmd/pftap").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	file := filepath.Join(dir, "killed.pcapng")
	cmd := exec.Command(bin, "capture", "--netns", ns, "-i", "lo", "-w", file, "tcp", "port", "80")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stderr)
	if !sc.Scan() || !strings.Contains(sc.Text(), "capturing on lo in netns "+ns) {
		t.Fatalf("pftap capture did not start: %q", sc.Text())
	}
	exchange(t, ns, []byte("GET / HTTP/1.1\r\n\r\n"), bytes.Repeat([]byte("y"), 500_000))
	// Wait until the file stops growing, then kill without warning.
	var last int64 = -1
	for i := 0; i < 50; i++ {
		time.Sleep(50 * time.Millisecond)
		st, err := os.Stat(file)
		if err == nil && st.Size() == last && last > 0 {
			break
		}
		if err == nil {
			last = st.Size()
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	var tsErr bytes.Buffer
	ts := exec.Command("tshark", "-n", "-r", file, "-T", "fields", "-e", "frame.number")
	ts.Stderr = &tsErr
	out, err := ts.Output()
	if err != nil || strings.Contains(tsErr.String(), "cut short") || strings.Contains(tsErr.String(), "appears to be damaged") {
		t.Fatalf("tshark cannot read the file of a killed capture: %v\n%s", err, tsErr.String())
	}
	tsharkCount := strings.Count(string(out), "\n")
	f, _ := os.Open(file)
	defer f.Close()
	r, err := packet.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var p packet.Packet
	n := 0
	for {
		if err := r.Next(&p); err != nil {
			if err.Error() != "EOF" {
				t.Errorf("pftap reading the killed capture: %v", err)
			}
			break
		}
		n++
	}
	if n == 0 || n != tsharkCount {
		t.Errorf("pftap read %d packets, tshark %d", n, tsharkCount)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
}
