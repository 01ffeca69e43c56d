// Package policy enforces networking.k8s.io/v1 NetworkPolicy on one node.
//
// One compiler (Compile) resolves policies against pods and namespaces into
// a Compiled model: who is isolated in which direction, and each rule's peer
// pods, ipBlocks and ports. Two readers share that model, so they cannot
// disagree about the semantics:
//
//   - the evaluator, Compiled.Verdict, which says whether a connection is
//     allowed and which policy rules (or which isolation) decided it; the
//     trace command and the tests use it;
//   - the renderer, which turns the part of the model about this node's
//     pods into the contents of the nftables table "inet podnet-policy":
//     sets of isolated pods and interval sets keyed by
//     (pod, peer range[, protocol, port range]), so a packet costs a few
//     set lookups however many policies exist.
//
// Ingress is enforced on the destination pod's node, egress on the source
// pod's node, both in the forward hook (after the service proxy's DNAT, so
// on pod addresses) and, for egress to the node itself, in the input hook.
// Replies of allowed connections pass as established conntrack entries.
// Traffic the node itself sends to its pods (probes) never passes the
// forward hook and is always allowed; host-network pods are not policed.
// Every drop is logged to NFLOG with a prefix naming the direction, for
// flow records (package flow resolves the isolating policies with the
// evaluator), at a limited rate with the excess counted (flow/logrule).
//
// NewController (controller.go) is the agent's policy controller (package
// controller): it reads Pods, Namespaces and NetworkPolicies and compiles
// them all at every sync. A policy the compiler cannot use as written is
// replaced by its last good version (or applies with its bad parts
// matching nothing) and gets a PolicyNotApplied Warning Event. After every
// sync it tells its status.Tracker (package policy/status) which version of
// each policy is now in force, or why the sync failed.
//
// Dangerous: the table fails closed. While the agent is down the rules stay
// in the kernel; a sync replaces them in one transaction, never through an
// empty (open) table.
package policy
