package main

import (
	"archive/tar"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/pftap/pftap/lab"
)

// staticPftap builds pftap as a release would (static, CGO_ENABLED=0).
func staticPftap(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "pftap")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version=v0.0.0-test", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// TestAgentImage: the image round trip. pftap agent image pushes this
// (static) pftap to a registry (go-containerregistry's, in process); pulled
// back, its one layer holds the binary at /pftap, which runs; the config
// says the platform, the entrypoint and the version. -o writes the same as
// a tarball docker load and kind read. A dynamically linked pftap is
// refused in one line.
func TestAgentImage(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the agent image is a Linux image")
	}
	bin := staticPftap(t)
	reg := httptest.NewServer(registry.New(registry.Logger(nilLogger())))
	defer reg.Close()
	u, _ := url.Parse(reg.URL)
	ref := u.Host + "/tools/pftap:test"

	ios, out, _ := testIO()
	if err := agentImageRun(&AgentImageOptions{IO: ios, Push: ref, Binary: bin}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "pushed "+u.Host+"/tools/pftap@sha256:") || !strings.Contains(out.String(), "--agent-image "+ref) {
		t.Errorf("output:\n%s", out)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH || strings.Join(cf.Config.Entrypoint, " ") != "/pftap" ||
		cf.Config.Labels["org.opencontainers.image.version"] != "v0.0.0-test" || cf.Config.Labels["org.opencontainers.image.source"] == "" {
		t.Errorf("config: os %s arch %s entrypoint %v labels %v", cf.OS, cf.Architecture, cf.Config.Entrypoint, cf.Config.Labels)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	h, err := tr.Next()
	if err != nil || h.Name != "pftap" || h.Mode&0o111 == 0 {
		t.Fatalf("layer entry %+v, %v", h, err)
	}
	pulled := filepath.Join(t.TempDir(), "pftap")
	f, err := os.OpenFile(pulled, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(f, tr)
	f.Close()
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("the layer holds more than /pftap: %v", err)
	}
	v, err := exec.Command(pulled, "version").Output()
	if err != nil || !strings.HasPrefix(string(v), "pftap v0.0.0-test linux/") {
		t.Errorf("the pulled binary: %q, %v", v, err)
	}

	// The tarball.
	tarPath := filepath.Join(t.TempDir(), "agent.tar")
	ios, out, _ = testIO()
	if err := agentImageRun(&AgentImageOptions{IO: ios, Output: tarPath, Binary: bin}); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("pftap-agent:v0.0.0-test")
	fromTar, err := tarball.ImageFromPath(tarPath, &tag)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// The tarball format carries the config and layers (its manifest is
	// made again on load): those are the pushed image's.
	c1, _ := fromTar.ConfigName()
	c2, _ := img.ConfigName()
	l1, _ := fromTar.Layers()
	d1, _ := l1[0].Digest()
	d2, _ := layers[0].Digest()
	if c1 != c2 || d1 != d2 {
		t.Errorf("the tarball's image (config %s, layer %s) is not the pushed one (config %s, layer %s)", c1, d1, c2, d2)
	}
	if !strings.Contains(out.String(), "kind load image-archive "+tarPath) {
		t.Errorf("output:\n%s", out)
	}
	// It is an OCI image layout too, as help says (ctr images import, kind
	// and Docker 25+ read that part): the same image, its name in the
	// index's annotations.
	dir := t.TempDir()
	if b, err := exec.Command("tar", "-xf", tarPath, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, b)
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("not an OCI layout: %v", err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 || im.Manifests[0].Annotations["io.containerd.image.name"] != "docker.io/library/pftap-agent:v0.0.0-test" ||
		im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "v0.0.0-test" {
		t.Fatalf("index: %+v %v", im, err)
	}
	fromLayout, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := fromLayout.ConfigName(); c != c2 {
		t.Errorf("the layout's image has config %s, the pushed one %s", c, c2)
	}
	if err := validate.Image(fromLayout); err != nil {
		t.Errorf("the layout's image does not validate: %v", err)
	}

	// This test binary is linked dynamically (cgo): refused.
	self, _ := os.Executable()
	ios, _, _ = testIO()
	err = agentImageRun(&AgentImageOptions{IO: ios, Output: filepath.Join(t.TempDir(), "x.tar"), Binary: self})
	if err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("a dynamic binary: %v", err)
	}
}

func nilLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// TestAgentImageInContainerd: the tarball of pftap agent image -o goes
// into a real containerd (the containerd lab's) with ctr images import,
// as on a node without a registry, and containerd runs its binary.
func TestAgentImageInContainerd(t *testing.T) {
	needContainerdCmd(t)
	bin := staticPftap(t)
	tarPath := filepath.Join(t.TempDir(), "agent.tar")
	ios, _, _ := testIO()
	if err := agentImageRun(&AgentImageOptions{IO: ios, Output: tarPath, Binary: bin, Tag: "pftap.local/agent:test"}); err != nil {
		t.Fatal(err)
	}
	l, err := lab.Start(context.Background(), lab.Config{Runtime: lab.RuntimeContainerd})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctr := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ctr", append([]string{"--address", l.ContainerdAddress(), "--namespace", "k8s.io"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	ctr("images", "import", "--snapshotter", "native", tarPath)
	if out := ctr("images", "ls", "-q"); !strings.Contains(out, "pftap.local/agent:test") {
		t.Fatalf("containerd's images after the import:\n%s", out)
	}
	// In the lab's cgroups and runc root, which the lab removes.
	out := ctr("run", "--rm", "--snapshotter", "native", "--runc-root", filepath.Join(l.Dir(), "containerd", "runc"),
		"--cgroup", "/"+l.Config().Name+"/agent-image-test", "pftap.local/agent:test", "pftap-agent-image-test", "/pftap", "--version")
	if !strings.Contains(out, "v0.0.0-test") {
		t.Errorf("the agent image's binary, run by containerd, said %q", out)
	}
}
