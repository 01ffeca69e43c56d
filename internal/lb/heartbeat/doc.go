// Package heartbeat is the failure detector of LoadBalancer announcement:
// node agents send each other small UDP datagrams on the node network
// (every 100 ms by default, to each peer's InternalIP on one port) and a
// peer is dead after DeadAfter (4 intervals) without one, so a crashed
// node's VIPs move within about half a second, without the API server in
// the path (a Lease renewed through it takes seconds to expire and fails
// together with the API server).
//
// A node that stops gracefully sends Goodbye; each peer marks it dead at
// once, reports the change (the announcer takes over and sends its
// gratuitous ARP/NA), and only then answers Ack. Node.Leave waits for
// those Acks (or a timeout), so the leaving agent keeps answering until
// its VIPs have new owners.
//
// Authentication: every message carries an HMAC-SHA256 with a key all
// agents share, a per-start epoch and a sequence number (no replay) and a
// timestamp (MaxSkew; no replay across restarts). An attacker on the node
// network without the key can drop or delay beats (a node then looks dead
// and its VIPs move: an outage of at most that node's share, which the
// same attacker could cause with forged ARP anyway), but cannot make a dead
// node look alive, say goodbye for a live one, or claim to be a node. ARP
// and NDP themselves are unauthenticated: anyone on the segment can answer
// for a VIP, with or without podnet.
//
// Dangerous: a node that has not yet heard its peers thinks it is alone
// (Settled says when a full DeadAfter has passed since the start); acting
// on its view earlier would claim every VIP for a moment.
package heartbeat
