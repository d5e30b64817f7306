//go:build linux

package lab

import (
	"archive/tar"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/google/go-containerregistry/pkg/name"
)

// labImage is the image the containerd lab's pod runs, built on the spot
// and imported into the lab's containerd, with no registry: the running
// executable at /pftap-lab (the sandbox's pause process and the built-in
// app, chosen by roleEnv), with nginx when the pod runs it, each with the
// shared libraries it loads (a Go binary built with cgo, Debian's nginx).
const (
	labImageRef = "pftap.local/lab:current"
	labBinary   = "/pftap-lab"
)

// imageFile is one file of the image: where it is on the host, where it
// goes in the image.
type imageFile struct{ host, image string }

// buildLabImage writes the lab image as a tarball ctr can import.
func buildLabImage(dir string, withNginx bool) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	files := []imageFile{{exe, labBinary}}
	bins := []string{exe}
	if withNginx {
		files = append(files, imageFile{nginxPath, nginxPath})
		bins = append(bins, nginxPath)
	}
	seen := map[string]bool{}
	for _, b := range bins {
		deps, err := elfDeps(b)
		if err != nil {
			return "", err
		}
		for _, d := range deps {
			if !seen[d.image] {
				seen[d.image] = true
				files = append(files, d)
			}
		}
	}
	layerPath := filepath.Join(dir, "lab-image-layer.tar")
	if err := writeLayer(layerPath, files); err != nil {
		return "", err
	}
	// Uncompressed: written, imported and unpacked once each, never
	// gzipped (a test binary is 100 MB).
	content, err := os.ReadFile(layerPath)
	if err != nil {
		return "", err
	}
	os.Remove(layerPath)
	layer := static.NewLayer(content, types.OCIUncompressedLayer)
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{Layer: layer})
	if err != nil {
		return "", err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", goruntime.GOARCH
	cf.Config = v1.Config{Entrypoint: []string{labBinary}, Env: []string{roleEnv + "=" + rolePause},
		Labels: map[string]string{"org.opencontainers.image.title": "pftap lab pod", "org.opencontainers.image.description": "the pause process and the built-in app of a pftap lab"}}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return "", err
	}
	tag, err := name.NewTag(labImageRef)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "lab-image.tar")
	if err := tarball.WriteToFile(out, tag, img); err != nil {
		return "", err
	}
	return out, nil
}

// writeLayer writes files, with /etc/passwd and /etc/group naming root
// (nginx looks its user up), as a tar layer.
func writeLayer(path string, files []imageFile) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	dirs := map[string]bool{}
	mkdirs := func(p string) error {
		var parents []string
		for d := filepath.Dir(p); d != "/" && !dirs[d]; d = filepath.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			dirs[parents[i]] = true
			if err := tw.WriteHeader(&tar.Header{Name: parents[i][1:] + "/", Mode: 0o755, Typeflag: tar.TypeDir, Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
		return nil
	}
	add := func(name string, mode int64, r io.Reader, size int64) error {
		if err := mkdirs(name); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: name[1:], Mode: mode, Size: size, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	for _, e := range []struct{ name, body string }{
		{"/etc/passwd", "root:x:0:0:root:/root:/sbin/nologin\n"},
		{"/etc/group", "root:x:0:\n"},
	} {
		if err := add(e.name, 0o644, strings.NewReader(e.body), int64(len(e.body))); err != nil {
			return err
		}
	}
	for _, file := range files {
		src, err := os.Open(file.host)
		if err != nil {
			return err
		}
		fi, err := src.Stat()
		if err != nil {
			src.Close()
			return err
		}
		err = add(file.image, 0o755, src, fi.Size())
		src.Close()
		if err != nil {
			return fmt.Errorf("image file %s: %w", file.host, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// libDirs are where the dynamic loader looks for libraries on Debian.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// elfDeps lists what the dynamic loader needs to start bin: its
// interpreter and every shared library it loads, transitively, each at
// the path the loader looks at in the image. A static binary needs none.
func elfDeps(bin string) ([]imageFile, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return nil, fmt.Errorf("%s is not an ELF executable: %v", bin, err)
	}
	defer f.Close()
	var out []imageFile
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return nil, err
		}
		interp := strings.TrimRight(string(b), "\x00")
		real, err := filepath.EvalSymlinks(interp)
		if err != nil {
			return nil, fmt.Errorf("%s's loader %s: %v", bin, interp, err)
		}
		out = append(out, imageFile{real, interp})
	}
	if len(out) == 0 {
		return nil, nil // static
	}
	seen := map[string]bool{}
	queue := []string{bin}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		ef, err := elf.Open(cur)
		if err != nil {
			return nil, err
		}
		libs, err := ef.ImportedLibraries()
		ef.Close()
		if err != nil {
			return nil, err
		}
		for _, lib := range libs {
			if seen[lib] {
				continue
			}
			seen[lib] = true
			path, err := findLib(lib, f.Machine)
			if err != nil {
				return nil, fmt.Errorf("%s needs %s: %v", bin, lib, err)
			}
			real, err := filepath.EvalSymlinks(path)
			if err != nil {
				return nil, err
			}
			out = append(out, imageFile{real, path})
			queue = append(queue, real)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].image < out[j].image })
	return out, nil
}

// findLib finds a shared library of the given machine in libDirs.
func findLib(name string, machine elf.Machine) (string, error) {
	for _, d := range libDirs {
		p := filepath.Join(d, name)
		ef, err := elf.Open(p)
		if err != nil {
			continue
		}
		m := ef.Machine
		ef.Close()
		if m == machine {
			return p, nil
		}
	}
	return "", errors.New("not found in " + strings.Join(libDirs, ", "))
}
