// Package kubeletapi is the part of the kubelet's HTTPS API that the API
// server calls for `kubectl exec`, `attach`, `logs` and `port-forward`:
//
//	/exec/{namespace}/{pod}[/{uid}]/{container}?command=...&input=1&output=1&error=1&tty=1
//	/attach/{namespace}/{pod}[/{uid}]/{container}
//	/portForward/{namespace}/{pod}[/{uid}]
//	/containerLogs/{namespace}/{pod}/{container}?follow&previous&tailLines&sinceSeconds|sinceTime&timestamps&limitBytes&stream
//	/healthz, /pods
//
// routed as pkg/kubelet/server/server.go routes them. The streaming
// protocols (SPDY v1–v4 and WebSocket channel.k8s.io up to v4, port-forward
// over SPDY and WebSocket) are served by the CRI streaming library of
// Kubernetes (k8s.io/cri-streaming: remotecommand and portforward, the code
// behind the kubelet's and containerd's streaming servers), called directly
// from the handlers instead of through a token-redirect server, because the
// runtime lives in this process. The node's containers are reached through
// the Runtime interface.
//
// Access: TLS with a serving certificate; a client certificate is
// requested and verified against the client CA (no certificate or an
// unverifiable one: 401, as the kubelet with anonymous auth off). The user is
// the certificate's CN, its groups the O fields. Authorization is the
// webhook-less form suited to a local cluster: the configured users and
// groups (the API server's kubelet-client identity) may use every endpoint,
// any other verified client is refused with 403 and the kubelet's message.
//
// Not served: WebSocket v5.channel.k8s.io and port-forward tunnelled over
// WebSocket (the kubelet's ExtendWebSocketsToKubelet). A node that does not
// declare that feature gets SPDY from the API server, which translates
// kubectl's WebSockets itself.
//
// Dangerous: whoever passes authorization can run any program as root in any
// pod of the node; only the API server's identity should be allowed.
package kubeletapi
