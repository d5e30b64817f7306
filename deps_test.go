package pftap_test

import (
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The rules of DESIGN.md §3 about who may use what, held by the build:
//
//   - decode and timeline are pure: they touch no OS (no files, processes,
//     sockets or namespaces of their own), read no clock, and use no pftap
//     package but each other, leg, and the leaves internal/preview and
//     internal/secret;
//   - replay, which reads recordings and serves them, needs no root: none
//     of the packages that capture, build labs or enter namespaces;
//   - nothing imports the CLI;
//   - internal/ holds leaves: its packages (but the programs under
//     internal/tools) use no pftap package outside internal/.

const module = "github.com/pftap/pftap"

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
	GoFiles    []string
	Dir        string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \",\"}}|{{join .Deps \",\"}}|{{join .GoFiles \",\"}}|{{.Dir}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var ps []pkg
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 5 {
			t.Fatalf("go list line %q", line)
		}
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, ",")
		}
		ps = append(ps, pkg{ImportPath: f[0], Imports: split(f[1]), Deps: split(f[2]), GoFiles: split(f[3]), Dir: f[4]})
	}
	return ps
}

func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

func under(path string, prefixes ...string) bool {
	r := rel(path)
	for _, p := range prefixes {
		if r == p || strings.HasPrefix(r, p+"/") {
			return true
		}
	}
	return false
}

func TestDependencyRules(t *testing.T) {
	ps := listPackages(t)
	if len(ps) < 10 {
		t.Fatalf("go list found %d packages", len(ps))
	}
	for _, v := range ruleViolations(ps) {
		t.Error(v)
	}
	for _, p := range ps {
		if under(p.ImportPath, "decode", "timeline", "kube") {
			checkNoClock(t, p)
		}
	}
}

// TestDependencyRulesCatch: each rule fails on a package planted to break
// it.
func TestDependencyRulesCatch(t *testing.T) {
	m := module + "/"
	for _, tc := range []struct {
		rule string
		p    pkg
	}{
		{"imports the CLI", pkg{ImportPath: m + "trace", Imports: []string{m + "cmd/pftap"}}},
		{"is pure but imports os", pkg{ImportPath: m + "decode", Imports: []string{"os"}}},
		{"is pure but depends on capture", pkg{ImportPath: m + "timeline", Deps: []string{m + "capture"}}},
		{"replay needs no root", pkg{ImportPath: m + "replay", Deps: []string{m + "lab"}}},
		{"internal leaf", pkg{ImportPath: m + "internal/pki", Deps: []string{m + "leg"}}},
		{"the pftap binary depends on testing", pkg{ImportPath: m + "cmd/pftap", Deps: []string{"testing"}}},
		{"lab imports agent", pkg{ImportPath: m + "lab", Imports: []string{m + "agent"}}},
		{"session imports lab", pkg{ImportPath: m + "session", Imports: []string{m + "lab"}}},
		{"session imports agent", pkg{ImportPath: m + "session", Imports: []string{m + "agent"}}},
		{"session imports internal/pfclient", pkg{ImportPath: m + "session", Imports: []string{m + "internal/pfclient"}}},
		{"session imports internal/kubectl", pkg{ImportPath: m + "session", Imports: []string{m + "internal/kubectl"}}},
		{"trace imports lab", pkg{ImportPath: m + "trace", Imports: []string{m + "lab"}}},
		{"report imports labrun", pkg{ImportPath: m + "report", Imports: []string{m + "labrun"}}},
	} {
		vs := ruleViolations([]pkg{tc.p})
		if len(vs) == 0 || !strings.Contains(strings.Join(vs, "\n"), tc.rule) {
			t.Errorf("planted %q: the rules said %q", tc.rule, vs)
		}
	}
}

// ruleViolations says what in ps breaks the rules.
func ruleViolations(ps []pkg) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	osImports := []string{"os", "os/exec", "os/signal", "syscall", "net", "net/http", "golang.org/x/sys/unix",
		"github.com/vishvananda/netns", "github.com/vishvananda/netlink", "github.com/gopacket/gopacket/afpacket"}
	for _, p := range ps {
		r := rel(p.ImportPath)
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module+"/cmd/") {
				bad("%s imports the CLI (%s)", r, rel(imp))
			}
		}
		if r == "cmd/pftap" {
			for _, d := range p.Deps {
				if d == "testing" {
					bad("the pftap binary depends on testing (test helpers belong in a package of their own, such as replay/replaytest)")
				}
			}
		}
		// Who may import whom: the lab runs the agent's pods as processes,
		// the session is the spec half (its jobs live in labrun and trace),
		// trace reads era facts from kube, not from the lab, and report
		// renders what it is given, running nothing.
		for _, rule := range []struct {
			from string
			not  []string
		}{
			{"lab", []string{"agent"}},
			{"labrun", []string{"agent"}},
			{"session", []string{"lab", "agent", "internal/pfclient", "internal/kubectl"}},
			{"trace", []string{"lab"}},
			{"report", []string{"lab", "labrun", "trace", "agent", "capture"}},
		} {
			if r != rule.from {
				continue
			}
			for _, imp := range p.Imports {
				for _, n := range rule.not {
					if imp == module+"/"+n {
						bad("%s imports %s", r, n)
					}
				}
			}
		}
		switch {
		case under(p.ImportPath, "decode", "timeline", "kube"):
			for _, imp := range p.Imports {
				for _, o := range osImports {
					if imp == o {
						bad("%s is pure but imports %s", r, imp)
					}
				}
			}
			for _, d := range p.Deps {
				if strings.HasPrefix(d, module+"/") && !under(d, "decode", "timeline", "leg", "internal/preview", "internal/secret") {
					bad("%s is pure but depends on %s", r, rel(d))
				}
			}
		case under(p.ImportPath, "replay"):
			for _, d := range p.Deps {
				if under(d, "capture", "lab", "internal/nsenter", "agent", "trace", "internal/kubectl") {
					bad("replay needs no root, but depends on %s", rel(d))
				}
			}
		case under(p.ImportPath, "internal") && !under(p.ImportPath, "internal/tools"):
			for _, d := range p.Deps {
				if strings.HasPrefix(d, module+"/") && !under(d, "internal") {
					bad("%s is an internal leaf but depends on %s", r, rel(d))
				}
			}
		}
	}
	return out
}

// checkNoClock fails for a call of time.Now or time.Since in a package's
// non-test files: pure packages take their times from the packets.
func checkNoClock(t *testing.T, p pkg) {
	t.Helper()
	fset := token.NewFileSet()
	for _, name := range p.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		timeName := ""
		for _, imp := range f.Imports {
			if imp.Path.Value == `"time"` {
				timeName = "time"
				if imp.Name != nil {
					timeName = imp.Name.Name
				}
			}
		}
		if timeName == "" {
			continue
		}
		src, err := os.ReadFile(filepath.Join(p.Dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, fn := range []string{".Now()", ".Since(", ".Until(", ".Sleep(", ".After(", ".NewTimer(", ".NewTicker(", ".Tick("} {
			if strings.Contains(string(src), timeName+fn) {
				t.Errorf("%s/%s reads the clock (%s%s): pure packages take their times from the packets", rel(p.ImportPath), name, timeName, fn)
			}
		}
	}
}

// TestModTidy: go.mod and go.sum say what the code imports, no more, no
// less (a module imported directly is not marked indirect).
func TestModTidy(t *testing.T) {
	out, err := exec.Command("go", "mod", "tidy", "-diff").CombinedOutput()
	if err != nil {
		t.Errorf("go.mod is not tidy (run go mod tidy):\n%s", out)
	}
}

// TestNoBinariesCommitted: the repository holds sources, recordings and
// documents, not programs built from them.
func TestNoBinariesCommitted(t *testing.T) {
	out, err := exec.Command("git", "ls-files", "-z").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		b := make([]byte, 4)
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		n, _ := fh.Read(b)
		fh.Close()
		if n == 4 && (string(b) == "\x7fELF" || string(b[:2]) == "MZ" || string(b) == "\xcf\xfa\xed\xfe") {
			t.Errorf("%s is an executable: build it, do not commit it", f)
		}
	}
}
