// Package dns is the cluster's DNS server, per the Kubernetes DNS-Based
// Service Discovery specification (schema 1.1.0): a drop-in for CoreDNS
// with its kubernetes plugin.
//
// The core is pure: Build turns Services, EndpointSlices and Pods, and the
// cluster's address ranges (ClusterRanges: ServiceCIDRs and the Nodes' pod
// CIDRs), into an immutable Snapshot of slim records; a Zone parses each
// question into a typed Request (Parse) before looking anything up, and
// answers it from the current snapshot (Answer). The server swaps whole
// snapshots, so a query never sees half an update. Until the first
// snapshot is stored (the informers have synced) every in-zone question
// gets SERVFAIL, never a false NXDOMAIN.
//
// Names outside the cluster zone are forwarded to the configured
// upstreams. Reverse names are the zone's when a cluster record owns them
// or they lie inside the cluster's ranges (NXDOMAIN when nothing owns
// them); the others are forwarded too, and answered NXDOMAIN by the zone
// when there is no upstream.
//
// Around the core: Server (server.go) is the miekg/dns handler that
// checks each message (one question, QUERY, EDNS version 0), asks the
// zone or the Forwarder, and fits the reply to the transport (UDP
// truncated to the client's size with TC). Forwarder (forward.go) asks
// the upstreams round-robin with failover and a bound on questions in
// flight, and keeps a bounded LRU cache of positive and negative replies
// (cache.go, RFC 2308). Run (run.go) keeps the zone current with one
// controller (package controller, named "dns"): its handlers only poke,
// and its sync rebuilds the whole snapshot from the listers.
//
// What is dangerous: without an upstream, names outside the zone get
// REFUSED (never a silent fallback to the host's resolver: in a local
// cluster that would leave the machine). An upstream that forwards back to
// this server makes a loop that is not detected (CoreDNS has its loop
// plugin): every hop takes one of the bounded upstream slots, so a looping
// question ends in SERVFAIL once they are used up, after up to that many
// hops.
package dns
