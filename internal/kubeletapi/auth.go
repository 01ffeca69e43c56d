package kubeletapi

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"slices"
)

// authenticate returns the user (CN) and groups (O) of the request's client
// certificate once it verifies against the client CA for client auth, as
// the API server's and kubelet's x509 authenticator does.
func (s *Server) authenticate(r *http.Request) (string, []string, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", nil, errors.New("no client certificate")
	}
	leaf := r.TLS.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: s.clientCAs, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "", nil, fmt.Errorf("client certificate %q: %w", leaf.Subject.CommonName, err)
	}
	if leaf.Subject.CommonName == "" {
		return "", nil, errors.New("client certificate without a common name")
	}
	return leaf.Subject.CommonName, leaf.Subject.Organization, nil
}

// authorized: the user or one of its groups is allowed.
func (s *Server) authorized(user string, groups []string) bool {
	if slices.Contains(s.cfg.AllowedUsers, user) {
		return true
	}
	for _, g := range groups {
		if slices.Contains(s.cfg.AllowedGroups, g) {
			return true
		}
	}
	return false
}
