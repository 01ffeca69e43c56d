// Package flow turns what the kernel reports about a node's traffic into
// flow records: one Record for every new connection the node forwards or
// delivers to or from its pods (conntrack NEW events, and DESTROY events
// with byte and packet counters where conntrack accounting is on), and one
// for every packet dropped by NetworkPolicy or rejected for a Service
// without endpoints (NFLOG group logrule.Group, written by the policy and
// proxy tables with a prefix that names the deciding point).
//
// The collector resolves addresses to pods, workloads and Services from the
// agent's informer caches, and a drop's isolating policies (or an allowed
// connection's allowing rules) with the policy evaluator, so the record
// names the same rules `podnet trace` shows. Records go to a bounded Ring
// (RingSize records per node; the oldest are overwritten) that the agent
// serves as NDJSON on GET /flows (Handler) and `podnet flows` reads from
// every node.
//
// Nothing here is lossless, and every loss is counted: the tables log at
// most logrule.Rate packets per second per rule (the excess is counted in
// the tables' flowlog-excess counters); a full netlink socket buffer
// (ENOBUFS) and a follower too slow for the stream are counted in
// podnet_flow_records_dropped_total by reason. Policies are resolved when
// the record is made, from the agent's current view: a policy changed in
// the meantime may be named instead of the one the kernel applied.
package flow
