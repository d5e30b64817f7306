package termout

import (
	"strings"
	"testing"
	"time"
)

// TestStatusLineFits: the status line of six legs fits 80 columns, is cut
// with an ellipsis on a narrower terminal, and says how long nothing has
// moved instead of a rate of zero once the transfer is over.
func TestStatusLineFits(t *testing.T) {
	var r Rates
	names := []string{"user", "L1", "L2", "L2-wire", "L3", "L4", "witness"}
	big := []int64{900 << 20, 910 << 20, 912 << 20, 930 << 20, 911 << 20, 905 << 20, 0}
	r.Line(time.Second, names, []int64{1, 1, 1, 1, 1, 1, 0}, 0)
	line := r.Line(2*time.Second, names, big, 0)
	if n := len([]rune(line)); n >= 80 || !strings.Contains(line, "MiB/s") || !strings.Contains(line, "L4 905M") || !strings.Contains(line, "drops 0") {
		t.Errorf("%d columns: %q", n, line)
	}
	quiet := r.Line(5*time.Second, names, big, 0)
	if strings.Contains(quiet, "/s") || !strings.Contains(quiet, "quiet 3s") {
		t.Errorf("after the transfer: %q", quiet)
	}
	if got := FitWidth(line, 40); len([]rune(got)) >= 40 || !strings.HasSuffix(got, "…") {
		t.Errorf("cut to 40 columns: %q", got)
	}
	if got := FitWidth("short", 80); got != "short" {
		t.Errorf("%q", got)
	}
}
