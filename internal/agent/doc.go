// Package agent is the podnet agent that runs on every node (a DaemonSet
// in a real cluster, one process per node namespace in the local cluster).
// It only assembles: one client, one shared informer factory, the
// controllers that are on, and the HTTP servers. The controllers are
// declared in their own packages, all in the shape of package controller:
//   - routing: routes to the other nodes' pod CIDRs, the VXLAN device and
//     masquerade of traffic leaving the cluster (package routing);
//   - cni-config: once the node has pod CIDRs, it writes the conflist that
//     the container runtime hands to podnet-cni, the way kindnet or Calico
//     do (cniconf.go). Until then the runtime reports the network as not
//     ready;
//   - proxy: the service proxy, kube-proxy's job (package proxy; off with
//     DisableProxy);
//   - policy: NetworkPolicy enforcement (package policy; off with
//     DisablePolicy);
//   - lb-announce: answers ARP/NDP for the LoadBalancer IPs this node owns,
//     with heartbeats between agents for failover (package lb/announce; on
//     with LBAnnounce). Run waits for its graceful handover before it
//     returns.
//
// Beside the controllers runs the flow collector (package flow; off with
// DisableFlows): it reads NFLOG group 14 and conntrack events in the
// agent's network namespace and keeps the node's records in a ring that
// MetricsAddr serves on /flows (flows.go).
//
// Metrics (one registry, docs/metrics.md) are served on MetricsAddr;
// health on HealthzAddr: /healthz answers for the proxy as kube-proxy's
// does, /healthz/<controller> for each controller, /livez for all of them
// and /readyz once each has applied its state (the DaemonSet's probes,
// deploy/base/agent.yaml). MetricsAddr serves the health paths too, for
// when kube-proxy holds its health port, and what the agent does as JSON:
// /lb/announcements and /policy/status (which version of each
// NetworkPolicy is in force here, package policy/status).
//
// While the API server is away the node keeps what it programmed and the
// informers' reads wait for it (controller.InformerConfig): they relist
// within a second of its return, and the controllers then write only what
// changed meanwhile (an update carrying the resourceVersion the cache had
// marks nothing).
//
// The client is the kubeconfig's or the in-cluster configuration's;
// APIServerHost/APIServerPort replace its address, for agents on nodes
// without kube-proxy, where the kubernetes Service's ClusterIP works only
// once the agent's own proxy runs.
//
// Dangerous: the informers are started once every controller has been
// constructed; a controller that asked the factory for an informer later
// would wait for it forever. The caches drop managedFields (nothing here
// reads them).
package agent
