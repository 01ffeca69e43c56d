package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/podnet/podnet/internal/localcluster/addons"
)

// newWorldDNSCommand runs the outside world's DNS server of a local cluster
// (started by podnet up inside the world namespace).
func newWorldDNSCommand() *cobra.Command {
	var listen, zone, address, nsAddress string
	cmd := &cobra.Command{
		Use:   "world-dns --listen ADDR:PORT --zone ZONE --address IP",
		Short: "Run the local cluster's outside-world DNS server (started by podnet up)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lp, err := netip.ParseAddrPort(listen)
			if err != nil {
				return fmt.Errorf("--listen: %w", err)
			}
			a, err := netip.ParseAddr(address)
			if err != nil {
				return fmt.Errorf("--address: %w", err)
			}
			ns := lp.Addr()
			if nsAddress != "" {
				if ns, err = netip.ParseAddr(nsAddress); err != nil {
					return fmt.Errorf("--ns-address: %w", err)
				}
			}
			w := &addons.WorldDNS{Zone: zone, Address: a, NSAddress: ns}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			fmt.Fprintf(cmd.ErrOrStderr(), "podnet world-dns: authoritative for %s on %s (udp, tcp); %s and www.%s -> %s; everything else REFUSED\n", zone, listen, zone, zone, a)
			return w.Serve(ctx, listen)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "ADDR:PORT to answer on")
	f.StringVar(&zone, "zone", addons.WorldZone, "the zone to be authoritative for")
	f.StringVar(&address, "address", "", "the address of the zone's apex and www")
	f.StringVar(&nsAddress, "ns-address", "", "the address of ns.ZONE (default: the listen address)")
	return cmd
}
