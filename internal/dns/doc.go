// Package dns is the cluster's DNS server, per the Kubernetes DNS-Based
// Service Discovery specification (schema 1.1.0): a drop-in for CoreDNS
// with its kubernetes plugin.
//
// The core is pure: Build turns Services, EndpointSlices and Pods into an
// immutable Snapshot of slim records; a Zone parses each question into a
// typed Request (Parse) before looking anything up, and answers it from the
// current snapshot (Answer). The server swaps whole snapshots, so a query
// never sees half an update. Until the first snapshot is stored (the
// informers have synced) every in-zone question gets SERVFAIL, never a
// false NXDOMAIN.
//
// Names outside the cluster zone, and reverse names of addresses the
// cluster does not own, are forwarded to the configured upstreams.
package dns
