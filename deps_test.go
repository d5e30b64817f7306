package pftap_test

import (
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
	osImports := []string{"os", "os/exec", "os/signal", "syscall", "net", "net/http", "golang.org/x/sys/unix",
		"github.com/vishvananda/netns", "github.com/vishvananda/netlink", "github.com/gopacket/gopacket/afpacket"}
	for _, p := range ps {
		r := rel(p.ImportPath)
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module+"/cmd/") {
				t.Errorf("%s imports the CLI (%s)", r, rel(imp))
			}
		}
		switch {
		case under(p.ImportPath, "decode", "timeline"):
			for _, imp := range p.Imports {
				for _, bad := range osImports {
					if imp == bad {
						t.Errorf("%s is pure but imports %s", r, imp)
					}
				}
			}
			for _, d := range p.Deps {
				if strings.HasPrefix(d, module+"/") && !under(d, "decode", "timeline", "leg", "internal/preview", "internal/secret") {
					t.Errorf("%s is pure but depends on %s", r, rel(d))
				}
			}
			checkNoClock(t, p)
		case under(p.ImportPath, "replay"):
			for _, d := range p.Deps {
				if under(d, "capture", "lab", "internal/nsenter", "agent", "trace", "internal/kubectl") {
					t.Errorf("replay needs no root, but depends on %s", rel(d))
				}
			}
		case under(p.ImportPath, "internal") && !under(p.ImportPath, "internal/tools"):
			for _, d := range p.Deps {
				if strings.HasPrefix(d, module+"/") && !under(d, "internal") {
					t.Errorf("%s is an internal leaf but depends on %s", r, rel(d))
				}
			}
		}
	}
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
