package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain makes the test binary the pftap command too, for the scripts.
//
// Run with a command for its first argument (`pftap.test version`, as
// anything that runs a binary to ask its version would), it is pftap as
// well: not a second run of the whole suite, labs and all, that would
// outlive the test that started it.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		os.Exit(run(os.Args[1:], systemIO()))
	}
	testscript.Main(m, map[string]func(){
		"pftap": func() { os.Exit(run(os.Args[1:], systemIO())) },
	})
}

// TestScripts runs testdata/script/*.txtar: pftap as a user runs it, for
// the commands that need no root (decode, replay, usage errors, exit
// codes). $RECORDINGS and $REPLAYS are the committed recordings.
//
// Beyond testscript's own commands:
//
//	exits CODE pftap ARGS...   run pftap; its exit status must be CODE
//	cut FILE N                 truncate FILE to N bytes
func TestScripts(t *testing.T) {
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			e.Setenv("RECORDINGS", abs(recordings))
			e.Setenv("REPLAYS", abs(replays))
			e.Setenv("XDG_CONFIG_HOME", filepath.Join(e.WorkDir, "config"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 2 {
					ts.Fatalf("usage: exits CODE COMMAND [ARGS...]")
				}
				want, err := strconv.Atoi(args[0])
				if err != nil {
					ts.Fatalf("exits: %v", err)
				}
				got := 0
				if err := ts.Exec(args[1], args[2:]...); err != nil {
					ee, ok := err.(*exec.ExitError)
					if !ok {
						ts.Fatalf("exits: %v", err)
					}
					got = ee.ExitCode()
				}
				if got != want {
					ts.Fatalf("%s exited %d, want %d", args[1], got, want)
				}
			},
			"cut": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 2 {
					ts.Fatalf("usage: cut FILE N")
				}
				n, err := strconv.ParseInt(args[1], 10, 64)
				if err != nil {
					ts.Fatalf("cut: %v", err)
				}
				ts.Check(os.Truncate(ts.MkAbs(args[0]), n))
			},
		},
	})
}
