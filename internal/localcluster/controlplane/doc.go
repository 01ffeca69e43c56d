// Package controlplane runs the control plane of a local cluster: etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler, from the
// binaries built under tools/ (Binaries, CheckBinaries), as detached
// processes recorded under <StateDir>/procs so that a later Stop or
// `podnet down` ends exactly them, by pid and start time, never by name.
//
// Start is transactional: it writes the PKI and kubeconfigs (pki.go), starts
// each process with the flags of flags.go, waits until each is healthy
// (wait.go), grants podnet's agents their ClusterRole (rbac.go), and on
// failure stops everything it started, naming the process and quoting the
// end of its log. IssueNodeCredentials gives each node's runtime and agent
// their identities (DESIGN-NOTES.md, "Identities"), IssueKubeletServing
// the runtime's kubelet API its serving certificate (kube-apiserver calls
// that API as KubeletClientUser), IssueKubeProxyCredentials its kube-proxy's
// when the cluster runs one.
//
// Dangerous: Start writes a CA whose key can mint any identity (including
// system:masters) to <StateDir>/pki, and hands the same key to
// kube-controller-manager to sign CSRs; the state directory must stay
// root-only. kube-apiserver listens on APIAddress:APIPort; etcd listens on
// loopback without TLS or authentication, so any local process can read
// and write the whole cluster state through it. Every process gets
// ProcessEnv, the caller's environment without proxy settings, so that
// cluster traffic never goes to an HTTP(S) proxy off the machine, and
// kube-apiserver dials kubelets at their InternalIP only, never resolving
// a node name through the machine's resolver. With Config.Confine set
// (podnet up passes the cluster's guard), every process starts confined
// and Start fails if one is not.
package controlplane
