package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/podnet/podnet/internal/lb/ipam"
)

// newControllerCommand is `podnet controller`, the cluster-wide
// controllers (today: LoadBalancer address allocation), one active replica
// elected through a Lease.
func newControllerCommand() *cobra.Command {
	var cfg ipam.RunConfig
	var verbose bool
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the cluster-wide controllers (LoadBalancer IP allocation from LoadBalancerIPPools)",
		Long: `Run the cluster-wide controllers: LoadBalancer IP allocation. Services of type
LoadBalancer without a loadBalancerClass, or with podnet.io/lb, get addresses
from the LoadBalancerIPPools (status.loadBalancer.ingress, ipMode VIP); a
Service that cannot be served stays pending with a Warning Event and the
condition lb.podnet.io/AddressAssigned saying why. With --leader-elect, one
replica allocates and the others wait on the Lease. See docs/loadbalancer.md.`,
		Example: "  podnet controller --kubeconfig /var/lib/podnet/podnet/controller.kubeconfig --leader-elect",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			if err := ipam.Run(ctx, cfg); err != nil {
				return fmt.Errorf("controller: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig path (default: in-cluster configuration)")
	f.BoolVar(&cfg.LeaderElect, "leader-elect", true, "allocate only while holding the Lease (one active replica cluster-wide)")
	f.StringVar(&cfg.LeaseNamespace, "leader-elect-namespace", "kube-system", "namespace of the Lease")
	f.StringVar(&cfg.LeaseName, "leader-elect-name", "podnet-lb-ipam", "name of the Lease")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", ":10265", "ADDR:PORT for /metrics, empty: off")
	f.StringVar(&cfg.HealthAddr, "health-addr", ":10266", "ADDR:PORT for /healthz (200 while standby or syncing well, 503 once a change waited a minute), empty: off")
	f.BoolVarP(&verbose, "verbose", "v", false, "log at debug level")
	return cmd
}
