// Package pki makes the certificates and keys a Kubernetes control plane
// needs, and the kubeconfig files that carry them: a cluster CA, a serving
// certificate for kube-apiserver, client certificates whose CN and O are the
// Kubernetes user and groups, the service-account signing key pair, and
// kubeconfigs that embed the CA, certificate and key.
//
// Every function is idempotent: a file that already holds a valid result
// (signed by this CA, same identity, names and usages, key matching, not near
// expiry) is reused, anything else is replaced. Files are written atomically
// (temporary file, then rename) under an exclusive lock on the directory, so
// concurrent callers, in one process or several, never see half a key pair.
// All keys are ECDSA P-256; kube-apiserver signs service-account tokens with
// ES256.
//
// Dangerous: the CA key (ca.key) lets its holder mint any identity, including
// system:masters; keys are written 0600 and the directory 0700, and kubeconfigs
// embed a private key, so they are 0600 too. A CA that is present but invalid
// is an error, never silently replaced: replacing it would invalidate every
// kubeconfig handed out. Reissuing a leaf certificate does not restart the
// processes that loaded the old one.
package pki
