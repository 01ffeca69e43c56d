// Package agent is the podnet agent that runs on every node (a DaemonSet
// in a real cluster, one process per node namespace in the local cluster).
// It wires Kubernetes informers to podnet's controllers on that node; today:
//   - routing: routes to the other nodes' pod CIDRs and masquerade of traffic
//     leaving the cluster (package routing);
//   - the CNI configuration: once the node has pod CIDRs, it writes the
//     conflist that the container runtime hands to podnet-cni, the way
//     kindnet or Calico do. Until then the runtime reports the network as
//     not ready.
//
// Every controller follows one shape: informer handlers only poke a runner;
// the runner calls one sync that reads the listers; nothing is programmed
// before every informer it reads has synced.
package agent
