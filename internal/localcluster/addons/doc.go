// Package addons deploys what a local cluster runs besides its control
// plane and nodes: the cluster DNS (a Deployment of `podnet dns` behind the
// kube-dns Service at the tenth service IP, as CoreDNS runs in a kubeadm
// cluster: DNSObjects, DeployDNS) and the outside world's DNS server
// (WorldDNS, run as `podnet world-dns` inside the world namespace by
// StartWorldDNS), the cluster DNS's only upstream. Every node's resolver
// configuration (NodeResolvConf) names the world's server, so a
// dnsPolicy: Default pod never sees the host's resolver.
//
// Dangerous: the DNS pods authenticate with a client certificate issued
// from the cluster CA (IssueDNSCredentials, user podnet:dns), bound to a
// ClusterRole that may only read services, endpointslices, pods and
// namespaces; widening DNSRBACRules widens what any pod that reads the
// kubeconfig can do. The world's server never sends a query anywhere: a
// name outside its zone is REFUSED, so nothing the cluster asks can reach
// a resolver outside the machine.
package addons
