// Package pool is the LoadBalancerIPPool API (lb.podnet.io/v1alpha1,
// cluster-scoped): the Go types of the CRD in deploy/crds, their
// conversion from the unstructured objects a dynamic client and informer
// give, the parsing of a pool's blocks into address ranges, and installing
// the CRD. There is no generated clientset: the controller reads pools
// through a dynamic informer and writes their status with the dynamic
// client.
//
// The CRD's schema refuses most bad pools (CEL rules: cidr and address
// syntax, one family per range, start <= end for IPv4); Ranges checks
// everything again, because a pool stored before a rule existed, or an
// IPv6 range whose order CEL cannot compare, must not break allocation:
// a bad block is reported and left out, the rest of the pool serves.
package pool
