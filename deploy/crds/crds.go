// Package crds holds podnet's CustomResourceDefinitions, one YAML file per
// CRD, embedded so that `podnet up` installs exactly what
// `kubectl apply -k deploy/crds/` would. The YAML is the one source: the Go
// types that read these objects (internal/lb/pool) follow it, and a
// control-plane test (internal/lb/ipam) applies it to a real API server.
package crds

import _ "embed"

// LoadBalancerIPPool is the CRD of LoadBalancerIPPool (lb.podnet.io).
//
//go:embed lb.podnet.io_loadbalancerippools.yaml
var LoadBalancerIPPool []byte

// All are every CRD, in the order to install them.
func All() [][]byte { return [][]byte{LoadBalancerIPPool} }
