package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/podnet/podnet/internal/registry"
)

// newRegistryCommand serves OCI image archives as a read-only registry (the
// local cluster runs it in the outside-world namespace for the nodes'
// containerd).
func newRegistryCommand() *cobra.Command {
	var listen string
	var archives []string
	cmd := &cobra.Command{
		Use:   "registry --listen ADDR:PORT --archive FILE [--archive FILE...]",
		Short: "Serve OCI image archives as a plain-HTTP, read-only registry (started by podnet up)",
		Long: `Serve every image of the OCI layout archives (what make image writes to
bin/images) over plain HTTP, read-only, under its repository path without
the registry host: docker.io/library/nginx:latest as library/nginx:latest,
registry.k8s.io/pause:3.10.1 as pause:3.10.1. A containerd whose hosts.toml
points docker.io, registry.k8s.io and ghcr.io at http://ADDR:PORT pulls them
by their ordinary names. Each request is logged on one line.`,
		Example: "  podnet registry --listen 127.0.0.1:5000 --archive bin/images/podnet.tar --archive bin/images/test.tar",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listen == "" || len(archives) == 0 {
				return errors.New("--listen and at least one --archive are required")
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			r, err := registry.Load(archives, log)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen: %w", err)
			}
			for _, img := range r.Images() {
				log.Info("serving", "image", img.Name, "as", img.Repository+":"+img.Tag, "digest", img.Digest)
			}
			log.Info("listening", "address", ln.Addr().String())
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return r.Serve(ctx, ln)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "ADDR:PORT to serve plain HTTP on")
	f.StringArrayVar(&archives, "archive", nil, "an OCI image layout archive (tar) to serve; repeat for more")
	return cmd
}
