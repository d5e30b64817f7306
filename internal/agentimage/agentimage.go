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
	"encoding/json"
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

// WriteTarball writes img, named ref, to path as one tarball that is both
// an OCI image layout (oci-layout, index.json with the name in its
// annotations, blobs/sha256/...: what ctr images import, kind load
// image-archive and docker load of Docker 25+ read) and a docker archive
// (manifest.json naming the same blobs: what older docker load reads), as
// docker save writes since Docker 25.
func WriteTarball(path string, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image name %q: %v", ref, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := writeArchive(f, tag, img); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// containerdName is the name containerd gives ref ("pftap-agent:v1" is
// docker.io/library/pftap-agent:v1).
func containerdName(tag name.Tag) string {
	reg := tag.RegistryStr()
	if reg == name.DefaultRegistry || reg == "index.docker.io" {
		reg = "docker.io"
	}
	return reg + "/" + tag.RepositoryStr() + ":" + tag.TagStr()
}

func writeArchive(w io.Writer, tag name.Tag, img v1.Image) error {
	tw := tar.NewWriter(w)
	put := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	dirs := []string{"blobs/", "blobs/sha256/"}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, Typeflag: tar.TypeDir, ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
	}
	blob := func(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	if err := put(blob(cfgName), cfg); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	var layerPaths []string
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if err := put(blob(d), b); err != nil {
			return err
		}
		layerPaths = append(layerPaths, blob(d))
	}
	man, err := img.RawManifest()
	if err != nil {
		return err
	}
	manDigest, err := img.Digest()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	if err := put(blob(manDigest), man); err != nil {
		return err
	}
	index := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{{
		MediaType: mt, Digest: manDigest, Size: int64(len(man)),
		Annotations: map[string]string{
			// containerd's name for it, and the OCI layout's reference.
			"io.containerd.image.name":          containerdName(tag),
			"org.opencontainers.image.ref.name": tag.TagStr(),
		}}}}
	ib, err := json.Marshal(index)
	if err != nil {
		return err
	}
	if err := put("index.json", ib); err != nil {
		return err
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	dm, err := json.Marshal([]struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{{Config: blob(cfgName), RepoTags: []string{tag.String()}, Layers: layerPaths}})
	if err != nil {
		return err
	}
	if err := put("manifest.json", dm); err != nil {
		return err
	}
	return tw.Close()
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
