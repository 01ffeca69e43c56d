// Package ui is podnet's web UI: a small JSON API over the same packages the
// CLI uses (trace for the trace form, probe for the connectivity matrix,
// policy/status for enforcement status, flow for live flow records) and a
// page of plain HTML, JavaScript and CSS embedded in the binary (static/,
// no build step, nothing fetched from outside the machine).
//
// The API:
//
//	GET  /api/topology           nodes, pods (IP, node), Services, NetworkPolicies
//	GET  /api/policies           where each NetworkPolicy is in force (status.Read)
//	GET  /api/flows?...          live flow records as server-sent events; the
//	                             query is GET /flows's (namespace, verdict, pod,
//	                             from-pod, to-pod, to-service, since) and last
//	POST /api/matrix             {namespaces, selector, port, protocol}: probe.RunMatrix
//	POST /api/trace              {namespace, pod, target, probe}: trace.Explain
//
// What is dangerous: /api/matrix and /api/trace with probe send real
// connections from pods, and the server holds the cluster's admin
// credentials. It is meant for 127.0.0.1 (podnet ui's default): the handler
// refuses requests whose Host is a name other than localhost (a DNS
// rebinding page in a browser on the same machine) and takes the two
// probing calls as POST with a JSON body only (a cross-site form cannot
// send one without a preflight the server never answers).
package ui
