// Package agentimage builds the OCI image a deployed pftap agent runs
// (`pftap agent image`): the pftap binary alone at /pftap, FROM scratch,
// with labels saying its version and source, for the binary's own OS and
// architecture. It writes the image as a tarball (docker load, kind load
// image-archive, ctr images import) or pushes it to a registry with the
// user's credentials (the docker config keychain). No daemon is needed.
package agentimage

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Path is where the image holds the binary: the agent pod's command.
const Path = "/pftap"

// Options say what image to build.
type Options struct {
	// Binary is the pftap executable to put in the image.
	Binary string
	// OS and Arch are the image's platform: the binary's own.
	OS, Arch string
	// Version and Source go into the labels
	// (org.opencontainers.image.version, .source, .revision).
	Version, Source, Revision string
	// Created stamps the image (zero: the epoch, for reproducible images).
	Created time.Time
}

// Build returns the image.
func Build(o Options) (v1.Image, error) {
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, err
	}
	if o.OS != "linux" {
		return nil, fmt.Errorf("the agent runs on Linux nodes, and this pftap is built for %s: build pftap for linux (GOOS=linux CGO_ENABLED=0 go build ./cmd/pftap) and run its agent image", o.OS)
	}
	if err := checkStatic(bytes.NewReader(bin)); err != nil {
		return nil, err
	}
	layer, err := binaryLayer(bin)
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{Layer: layer,
		History: v1.History{CreatedBy: "pftap agent image: " + Path, Created: v1.Time{Time: o.Created}}})
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg := cf.Config
	cfg.Entrypoint = []string{Path}
	cfg.Cmd = []string{"agent"}
	cfg.Labels = map[string]string{
		"org.opencontainers.image.title":       "pftap",
		"org.opencontainers.image.description": "pftap agent: the node side of pftap trace",
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.source":      o.Source,
	}
	if o.Revision != "" {
		cfg.Labels["org.opencontainers.image.revision"] = o.Revision
	}
	if img, err = mutate.Config(img, cfg); err != nil {
		return nil, err
	}
	cf, err = img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = o.OS, o.Arch, v1.Time{Time: o.Created}
	return mutate.ConfigFile(img, cf)
}

// CheckBinary says why the binary at path cannot be the agent image's
// (not an ELF executable, or linked dynamically), reading only its
// headers; nil when Build would take it. Check a binary with it before
// running it to ask its version.
func CheckBinary(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return checkStatic(f)
}

// checkStatic refuses a dynamically linked binary: FROM scratch has no
// libc to load it with.
func checkStatic(bin io.ReaderAt) error {
	f, err := elf.NewFile(bin)
	if err != nil {
		return fmt.Errorf("the pftap binary is not an ELF executable: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("this pftap is dynamically linked (built with cgo), and the image has no libc: build it static (CGO_ENABLED=0 go build ./cmd/pftap) and run that one's agent image")
		}
	}
	return nil
}

// binaryLayer is a layer holding bin at Path, mode 0755, owned by root.
func binaryLayer(bin []byte) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: Path[1:], Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// WriteTarball writes img, tagged ref, as a tarball that docker load, kind
// load image-archive and ctr images import read.
func WriteTarball(path string, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image name %q: %v", ref, err)
	}
	return tarball.WriteToFile(path, tag, img)
}

// Push pushes img to ref with the user's registry credentials (the docker
// config keychain: ~/.docker/config.json, credential helpers).
func Push(ref string, img v1.Image, opts ...name.Option) (name.Digest, error) {
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("image name %q: %v", ref, err)
	}
	if err := remote.Write(r, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", r, err)
	}
	d, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return r.Context().Digest(d.String()), nil
}
