// Package status answers "is my NetworkPolicy in force on every node yet?".
//
// Each node agent keeps a Tracker beside its policy enforcer: after every
// sync it records, per NetworkPolicy, the version its informer had (Seen),
// the version whose rules are now in the kernel (InForce) and since when,
// and why a version is not in force as written (the compiler could not use
// it, so its last good version stays, or the nftables transaction failed,
// so the previous rules stay). The agent serves that view as JSON at
// /policy/status on its metrics address (Tracker.ServeHTTP), so the status
// costs no API write at all, however many policies change: only a reader
// pays, one request per node, optionally for one namespace.
//
// The reader side (ReadViews, Aggregate) is what `podnet status policies`
// and the web UI use: it lists the NetworkPolicies from the API server,
// reads every agent's view through the API server's node proxy
// (/api/v1/nodes/NODE:PORT/proxy/policy/status, which `kubectl get --raw`
// reads too) and joins them into one PolicyStatus per policy with the
// State of each node: InForce, Partial, Lagging, Failed or Unknown.
//
// A version is compared by generation (the API server raises it on every
// spec change, and only the spec makes rules) and UID (a policy deleted and
// made again is a new one), so a label change on a policy does not make it
// lag.
package status
