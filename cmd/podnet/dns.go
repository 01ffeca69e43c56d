package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/podnet/podnet/internal/dns"
)

// newDNSCommand is `podnet dns`, the cluster DNS server (CoreDNS with the
// kubernetes, forward, cache, health, ready and prometheus plugins, in
// one process). Each flag's help names what it replaces in a Corefile.
func newDNSCommand() *cobra.Command {
	var cfg dns.RunConfig
	var podMode string
	var ttl uint32
	var verbose bool
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Run the cluster DNS server (Services, endpoints and pods of the cluster zone; other names forwarded)",
		Long: `Run the cluster DNS server: the records of the Kubernetes DNS specification
for the cluster zone and the reverse zones, from Services, EndpointSlices and
(with --pods verified) Pods; other names are forwarded to --upstream with a
cache. Until the informers have synced, names in the zone get SERVFAIL.
Without --upstream, names outside the zone get REFUSED, and reverse names
(PTR) that no cluster object owns get NXDOMAIN. With one, only reverse names
outside the cluster's ranges (ServiceCIDRs, Nodes' podCIDRs) are forwarded.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.PodMode = dns.PodMode(podMode)
			cfg.TTL = ttl
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("dns: %w", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return dns.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig path (default: in-cluster configuration; CoreDNS: kubernetes { kubeconfig })")
	f.StringVar(&cfg.Listen, "listen", ":53", "ADDR:PORT to answer DNS on, UDP and TCP (CoreDNS: the server block's port, .:53)")
	f.StringVar(&cfg.Zone, "zone", "cluster.local", "the cluster domain (CoreDNS: kubernetes cluster.local in-addr.arpa ip6.arpa; the reverse zones are always served)")
	f.Uint32Var(&ttl, "ttl", 30, "TTL of the zone's answers and its negative-caching TTL, in seconds (CoreDNS: kubernetes { ttl 30 })")
	f.StringVar(&podMode, "pods", string(dns.PodsInsecure),
		"pod records a-b-c-d.NS.pod.ZONE: disabled, insecure (any address answers) or verified (only addresses of pods in NS; watches every Pod) (CoreDNS: kubernetes { pods insecure })")
	f.StringSliceVar(&cfg.Upstreams, "upstream", nil,
		"ADDR[:PORT] of a resolver for names outside the zone; repeatable or comma-separated, tried round-robin; none: such names get REFUSED (CoreDNS: forward . ADDR...)")
	f.IntVar(&cfg.CacheSize, "cache-size", 10000, "forwarded replies cached, positive and negative together; 0 disables the cache (CoreDNS: cache { success/denial CAPACITY })")
	f.DurationVar(&cfg.CacheMaxTTL, "cache-max-ttl", 0, "cap on how long a forwarded reply is cached (default 30s; CoreDNS: cache 30)")
	f.IntVar(&cfg.MaxConcurrentUpstream, "max-concurrent-upstream", 1000,
		"upstream questions in flight; beyond, SERVFAIL at once (CoreDNS: forward { max_concurrent 1000 })")
	f.DurationVar(&cfg.UpstreamTimeout, "upstream-timeout", 0, "timeout of one exchange with one upstream (default 2s; CoreDNS: forward's dial/read timeouts)")
	f.StringVar(&cfg.HealthListen, "health-listen", ":8080",
		"ADDR:PORT for /health, /ready and /metrics, empty: off (CoreDNS: health :8080, ready :8181 and prometheus :9153 in one)")
	f.DurationVar(&cfg.Lameduck, "lameduck", 5*time.Second,
		"after SIGTERM, go on answering this long while /ready fails, so clients move to other replicas (CoreDNS: health { lameduck 5s })")
	f.BoolVarP(&verbose, "verbose", "v", false, "log every zone rebuild")
	return cmd
}
