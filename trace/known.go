package trace

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The agents a user has pinned are remembered, one per line ("ADDRESS
// SHA256"), in a file of the user's (DefaultKnownAgents), so that the next
// trace to the same address needs no --agent-fingerprint and an impostor
// that answers there later is refused before anything is sent to it.

// DefaultKnownAgents is where trace remembers pinned agents:
// $XDG_CONFIG_HOME/pftap/known_agents, or ~/.config/pftap/known_agents.
func DefaultKnownAgents() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "pftap", "known_agents")
}

func lookupKnownAgent(file, addr string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	found := ""
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[0] == addr {
			found = fields[1] // the last line for an address wins
		}
	}
	return found, sc.Err()
}

func rememberAgent(file, addr, fp string) error {
	if cur, _ := lookupKnownAgent(file, addr); strings.EqualFold(cur, fp) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s %s\n", addr, strings.ToLower(fp))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
