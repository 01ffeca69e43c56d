// Package plan is the plan of a local cluster: its name, its node count,
// its zones (nodes dealt to them in turn, the zone in the node's name and
// labels, zones.go), its service proxy (the podnet agents' own or upstream kube-proxy in one
// of its modes, serviceproxy.go), every address it uses and every name and
// file derived from them, in one
// Config that `podnet up` saves as <StateDir>/cluster.json and every other
// part (topology, safety, control plane, add-ons, the node runtimes, the
// CLI) loads. ../DESIGN-NOTES.md is the contract this package writes down
// in code: nothing else may invent a name, an address or a path.
//
// The address plan is derived in one place: SetNodeNetwork gives the root
// namespace .1, node i .10+i, the world .254 and the LoadBalancer pool
// .200/29 of the node network; SetWorldNetwork puts the world's DNS server
// at .53 of the world network. DefaultConfig and podnet up's flags
// (SetRanges) both use them.
//
// Dangerous: the other packages trust these names to decide what belongs
// to a cluster and may be deleted (OwnsLink, OwnsNamespace,
// BlackholeMetric). They must stay exact, so that cluster "a" never claims
// "a-b-node-1" of cluster "a-b" (which is why a zone follows a node's name
// after a dot, "a-node-1.z", and never sits between dashes), and Validate must keep refusing ranges
// that would send the cluster's traffic somewhere the kernel treats
// specially. The package itself touches nothing but the state directory.
package plan
