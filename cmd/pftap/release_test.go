package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/pftap/pftap/internal/kubectl"
	"github.com/pftap/pftap/internal/testenv"
)

// TestReleaseAndPlugin: scripts/release.sh builds this platform's archive,
// its checksum and the krew manifest filled from it; the archived binary
// says its version, and installed as kubectl-pftap on PATH, real kubectl
// runs it as `kubectl pftap`, whose usage and examples say so.
func TestReleaseAndPlugin(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the release script runs on Linux")
	}
	testenv.NeedTool(t, kubectl.Path, "kubectl (on every machine)")
	dist := t.TempDir()
	plat := runtime.GOOS + "/" + runtime.GOARCH
	cmd := exec.Command("bash", "scripts/release.sh", "v0.0.0-test", dist)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "PLATFORMS="+plat)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release.sh: %v\n%s", err, b)
	}
	archive := "pftap_v0.0.0-test_" + runtime.GOOS + "_" + runtime.GOARCH + ".tar.gz"
	data, err := os.ReadFile(filepath.Join(dist, archive))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	sums, _ := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if string(sums) != sum+"  "+archive+"\n" {
		t.Errorf("SHA256SUMS: %q, want the archive's %s", sums, sum)
	}
	var m struct {
		APIVersion string `json:"apiVersion"`
		Kind       string
		Metadata   struct{ Name string }
		Spec       struct {
			Version, ShortDescription string
			Platforms                 []struct {
				Selector struct {
					MatchLabels map[string]string `json:"matchLabels"`
				}
				URI, Sha256, Bin string
			}
		}
	}
	manifest, _ := os.ReadFile(filepath.Join(dist, "pftap.yaml"))
	if err := yaml.Unmarshal(manifest, &m); err != nil {
		t.Fatalf("pftap.yaml: %v\n%s", err, manifest)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "pftap" || m.Spec.Version != "v0.0.0-test" ||
		len(m.Spec.Platforms) != 1 {
		t.Fatalf("manifest:\n%s", manifest)
	}
	p := m.Spec.Platforms[0]
	if p.Sha256 != sum || !strings.HasSuffix(p.URI, "/v0.0.0-test/"+archive) || p.Bin != "pftap" ||
		p.Selector.MatchLabels["os"] != runtime.GOOS || p.Selector.MatchLabels["arch"] != runtime.GOARCH {
		t.Errorf("manifest platform %+v, archive sha256 %s", p, sum)
	}

	// Unpack it as krew does, and install it as kubectl's plugin.
	bin := t.TempDir()
	gz, err := gzip.NewReader(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		hd, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(filepath.Join(bin, hd.Name), os.O_CREATE|os.O_WRONLY, os.FileMode(hd.Mode))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(f, tr)
		f.Close()
	}
	if out, err := exec.Command(filepath.Join(bin, "pftap"), "--version").Output(); err != nil || !strings.HasPrefix(string(out), "pftap v0.0.0-test "+plat) {
		t.Errorf("pftap --version: %q, %v", out, err)
	}
	if err := os.Symlink(filepath.Join(bin, "pftap"), filepath.Join(bin, pluginName)); err != nil {
		t.Fatal(err)
	}
	k := exec.Command(kubectl.Path, "pftap", "lab", "--help")
	k.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	out, err := k.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl pftap lab --help: %v\n%s", err, out)
	}
	for _, want := range []string{"Usage:\n  kubectl pftap lab [flags]", "  sudo kubectl pftap lab\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kubectl pftap lab --help lacks %q:\n%s", want, out)
		}
	}
	k = exec.Command(kubectl.Path, "pftap", "version")
	k.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	if out, err := k.Output(); err != nil || !strings.HasPrefix(string(out), "pftap v0.0.0-test") {
		t.Errorf("kubectl pftap version: %q, %v", out, err)
	}
}
