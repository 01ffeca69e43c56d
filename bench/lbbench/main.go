// Command lbbench measures LoadBalancer IPs on a running local cluster
// (`podnet up`), from the outside-world namespace, and reports; it asserts
// nothing. Three parts (-parts, default all):
//
//   - failover: a client in the world namespace sends a UDP request to a
//     LoadBalancer IP every -every (10 ms), each from a new socket, and
//     waits -timeout for the reply. The VIP's announcing node then fails,
//     -runs times per kind (-kinds): its agent killed with SIGKILL, its
//     agent stopped with SIGTERM (goodbye and handover), its link to the
//     node network set down. Per kind: p50/p99/max of the longest gap
//     between replies (last reply before → first reply after) and the
//     requests lost, the time until the world's neighbour entry for the
//     VIP left the failed node, and the same gap and loss while the node
//     comes back. Only processes the cluster recorded (package proc) are
//     signalled, through a pidfd; an agent is restarted from its record.
//     The endpoints run on node 1 and the VIP is one the rendezvous hash
//     gives to another node, so a failed node takes no endpoint with it.
//   - create: -services times, a Service of type LoadBalancer (endpoints
//     already Ready) is created with a requested address from the
//     cluster's pool, the world's neighbour entry for it having been
//     deleted; from the moment Create returns the world probes it every
//     -every; reported: p50/p99/max until the first reply, and until the
//     address was in the Service's status (seen by a watch).
//   - apicost: the API requests per second in a quiet interval (-quiet)
//     with no LoadBalancer Service and then with -lb-services (1,000) of
//     them, all addressed from a pool of their own, read from the API
//     server's metrics: apiserver_request_total (all clients) and
//     apiserver_flowcontrol_dispatched_requests_total per FlowSchema, with
//     two FlowSchemas made for the run that match the agents (group
//     podnet:agents) and the LB controller (user podnet:lb-controller),
//     so their requests are counted by identity.
//
// Everything it creates (a namespace lbbench-<random>, the Services, the
// pool lbbench-<random>, the FlowSchemas) is deleted at the end, also on
// error or SIGINT/SIGTERM; a failed link is set up again and a stopped
// agent restarted. Run as root against a cluster started with `podnet up`:
//
//	make bench-lb     # starts cluster lbbench with its own address plan, runs this, takes it down
//	go run ./bench/lbbench --cluster podnet -runs 5 -parts failover
//
// Traffic goes only from the world namespace to LoadBalancer IPs of the
// cluster's node network, inside namespaces the cluster made.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/bench/internal/localbench"
	"github.com/podnet/podnet/internal/localcluster"
	"github.com/podnet/podnet/internal/netns"
)

// port is the endpoints' UDP (and TCP, for the readiness probe) port.
const port = 8080

// payload is what each of the world's requests carries.
var payload = []byte("lbbench\n")

type options struct {
	cluster, stateDir string
	parts, kindList   string
	runs, services    int
	lbServices        int
	every, timeout    time.Duration
	observe, quiet    time.Duration
	apiPool           string
	kinds             map[string]bool
}

// cluster is the running local cluster and what the run made in it.
type cluster struct {
	o       options
	cfg     *localcluster.Config
	cs      kubernetes.Interface
	dyn     dynamic.Interface
	worldNS string
	ns      string // the run's namespace
	suffix  string // random, names the run's cluster-scoped objects

	// Set up by setupVIP for the failover part.
	vip      netip.Addr
	owner    int            // node index announcing vip
	ownerMAC string         // its MAC on the node network
	nodeMACs map[int]string // every node's MAC on the node network
}

func main() {
	var o options
	flag.StringVar(&o.cluster, "cluster", "podnet", "local cluster name")
	flag.StringVar(&o.stateDir, "state-dir", "", "cluster state directory (default /var/lib/podnet/<cluster>)")
	flag.StringVar(&o.parts, "parts", "failover,create,apicost", "which measurements, comma-separated")
	flag.StringVar(&o.kindList, "kinds", "kill,term,linkdown", "failure kinds, comma-separated")
	flag.IntVar(&o.runs, "runs", 20, "failovers per kind")
	flag.IntVar(&o.services, "services", 20, "Services created one after another (create)")
	flag.IntVar(&o.lbServices, "lb-services", 1000, "LoadBalancer Services in the steady state (apicost)")
	flag.DurationVar(&o.every, "every", 10*time.Millisecond, "the world client sends this often")
	flag.DurationVar(&o.timeout, "timeout", time.Second, "a request without a reply after this long is lost")
	flag.DurationVar(&o.observe, "observe", 3*time.Second, "how long a failure lasts before it is undone")
	flag.DurationVar(&o.quiet, "quiet", time.Minute, "length of each quiet interval (apicost)")
	flag.StringVar(&o.apiPool, "apicost-pool", "198.19.212.0/22", "addresses of the apicost Services (a pool of their own; nothing is sent to them)")
	flag.Parse()
	o.kinds = map[string]bool{}
	for _, k := range strings.Split(o.kindList, ",") {
		o.kinds[strings.TrimSpace(k)] = true
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lbbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (err error) {
	if o.runs < 1 || o.services < 1 || o.every <= 0 || o.timeout <= 0 {
		return errors.New("need -runs >= 1, -services >= 1, -every > 0, -timeout > 0")
	}
	c, err := connect(o)
	if err != nil {
		return err
	}
	if err := c.setup(ctx); err != nil {
		return errors.Join(err, c.cleanup())
	}
	defer func() { err = errors.Join(err, c.cleanup()) }()
	fmt.Printf("# LoadBalancer benchmarks (bench/lbbench)\n\ncluster %s: %d nodes, node network %s, pool %s; load average at start: %s\n\n",
		c.cfg.Name, c.cfg.Nodes, c.cfg.NodeNetwork, c.cfg.LBPool, localbench.LoadAvg())
	parts := map[string]func(context.Context) error{"failover": c.failover, "create": c.create, "apicost": c.apicost}
	for _, name := range strings.Split(o.parts, ",") {
		part, ok := parts[strings.TrimSpace(name)]
		if !ok {
			return fmt.Errorf("unknown part %q (failover, create, apicost)", name)
		}
		if err := part(ctx); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	fmt.Printf("\nload average at end: %s\n", localbench.LoadAvg())
	return nil
}

func connect(o options) (*cluster, error) {
	cfg, rc, err := localbench.Connect(o.cluster, o.stateDir, 200)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return &cluster{o: o, cfg: cfg, cs: cs, dyn: dyn, worldNS: netns.Path(cfg.WorldNSName()),
		suffix: hex.EncodeToString(b), nodeMACs: map[int]string{}}, nil
}
