package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/pftap/pftap/internal/agentimage"
	"github.com/pftap/pftap/internal/termout"
)

// AgentImageOptions are the inputs of `pftap agent image`.
type AgentImageOptions struct {
	IO       *IOStreams
	Output   string
	Tag      string
	Push     string
	Platform string
	// Binary is the pftap to put in the image (default: this one).
	Binary string
}

func newAgentImageCmd(ios *IOStreams) *cobra.Command {
	opts := &AgentImageOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "image (-o FILE.tar | --push REGISTRY/REPO:TAG)",
		Short: "Build the image pftap trace --agent deploy runs: this pftap alone, FROM scratch",
		Long: `pftap agent image builds an OCI image holding this pftap binary at /pftap
(nothing else: FROM scratch), labelled with its version and source, for the
binary's own OS and architecture, without a Docker daemon. pftap trace
--agent deploy --agent-image REF runs it on the target pod's node.

-o writes one tarball that is both an OCI image layout and a docker archive
(as docker save writes since Docker 25), for a cluster that cannot pull from
you:
  kind load image-archive agent.tar          (kind)
  ctr -n k8s.io images import agent.tar      (containerd, on each node)
  docker load -i agent.tar                   (a local Docker)
--push sends it to a registry the cluster pulls from, with your registry
credentials (~/.docker/config.json and its credential helpers).

The binary must be linux and static: CGO_ENABLED=0 go build ./cmd/pftap
(a go build with cgo on, the default where gcc is installed, is refused).`,
		Example: `  pftap agent image -o agent.tar && kind load image-archive agent.tar
  pftap agent image --push registry.example.com/tools/pftap:v0.3.0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (opts.Output == "") == (opts.Push == "") {
				return usageError{errors.New("give -o FILE.tar or --push REGISTRY/REPO:TAG (one of them)")}
			}
			own := runtime.GOOS + "/" + runtime.GOARCH
			if opts.Platform != "" && opts.Platform != own {
				return usageError{fmt.Errorf("--platform %s: the image holds this binary, which is %s; run the %s build of pftap to make that image", opts.Platform, own, opts.Platform)}
			}
			if err := checkWritable("-o", opts.Output); err != nil {
				return err
			}
			return agentImageRun(opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Output, "output", "o", "", "write the image to this tarball (an OCI image layout that is also a docker archive)")
	f.StringVar(&opts.Tag, "tag", "", "the image's name in the tarball (default: pftap-agent:VERSION)")
	f.StringVar(&opts.Push, "push", "", "push the image to REGISTRY/REPO:TAG")
	f.StringVar(&opts.Platform, "platform", "", "OS/ARCH of the image: only this binary's own ("+runtime.GOOS+"/"+runtime.GOARCH+")")
	return cmd
}

func agentImageRun(opts *AgentImageOptions) error {
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return err
		}
	}
	ver, rev := buildVersion()
	if opts.Binary != "" {
		// Refused before it is run to ask its version: a binary the
		// image cannot take is not run at all.
		if err := agentimage.CheckBinary(bin); err != nil {
			return err
		}
		ver, rev = agentimage.BinaryVersion(bin, 10*time.Second)
	}
	img, err := agentimage.Build(agentimage.Options{Binary: bin, OS: runtime.GOOS, Arch: runtime.GOARCH,
		Version: ver, Revision: rev, Source: "https://github.com/pftap/pftap", Created: time.Unix(0, 0).UTC()})
	if err != nil {
		return err
	}
	if opts.Push != "" {
		d, err := agentimage.Push(opts.Push, img)
		if err != nil {
			return err
		}
		fmt.Fprintf(opts.IO.Out, "pushed %s\n  pftap trace --agent deploy --agent-image %s ...\n", d, opts.Push)
		return nil
	}
	tag := opts.Tag
	if tag == "" {
		tag = "pftap-agent:" + agentimage.Tag(ver)
	}
	if err := agentimage.WriteTarball(opts.Output, tag, img); err != nil {
		return err
	}
	size := int64(0)
	if fi, err := os.Stat(opts.Output); err == nil {
		size = fi.Size()
	}
	d, _ := img.Digest()
	fmt.Fprintf(opts.IO.Out, "wrote %s (image %s, %s, %s)\n  load it: kind load image-archive %s | ctr -n k8s.io images import %s | docker load -i %s\n  then: pftap trace --agent deploy --agent-image %s ...\n",
		opts.Output, tag, termout.Size(size), d, opts.Output, opts.Output, opts.Output, tag)
	return nil
}
