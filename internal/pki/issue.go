package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"
)

// CertSpec says what a leaf certificate must contain.
type CertSpec struct {
	CommonName   string
	Organization []string // Kubernetes groups of a client certificate
	DNSNames     []string
	IPs          []netip.Addr
	Usages       []x509.ExtKeyUsage // ServerAuth, ClientAuth or both
}

// KeyPair is an issued certificate and its key, on disk and in memory.
type KeyPair struct {
	CertFile, KeyFile string
	CertPEM, KeyPEM   []byte
	Cert              *x509.Certificate
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// IssueClient ensures <Dir>/<name>.{crt,key} hold a client certificate for
// user cn in groups orgs.
func (ca *CA) IssueClient(name, cn string, orgs []string) (*KeyPair, error) {
	return ca.Issue(name, CertSpec{
		CommonName:   cn,
		Organization: orgs,
		Usages:       []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// IssueServing ensures <Dir>/<name>.{crt,key} hold a serving certificate for
// the given DNS names and addresses; cn is its subject common name.
func (ca *CA) IssueServing(name, cn string, dnsNames []string, ips []netip.Addr) (*KeyPair, error) {
	return ca.Issue(name, CertSpec{
		CommonName: cn,
		DNSNames:   dnsNames,
		IPs:        ips,
		Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// Issue ensures <Dir>/<name>.crt and <Dir>/<name>.key hold a certificate
// matching spec, signed by ca. Existing files are reused when they match
// exactly and are valid for at least RenewBefore; otherwise a new key and
// certificate replace them.
func (ca *CA) Issue(name string, spec CertSpec) (*KeyPair, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("pki: invalid file name %q", name)
	}
	if spec.CommonName == "" || len(spec.Usages) == 0 {
		return nil, fmt.Errorf("pki: %s: a certificate needs a common name and a usage", name)
	}
	kp := &KeyPair{
		CertFile: filepath.Join(ca.Dir, name+".crt"),
		KeyFile:  filepath.Join(ca.Dir, name+".key"),
	}
	err := withDirLock(ca.Dir, func() error {
		if ca.reusable(kp, spec) {
			return nil
		}
		return ca.create(kp, spec)
	})
	if err != nil {
		return nil, fmt.Errorf("pki: issue %s: %w", name, err)
	}
	return kp, nil
}

// reusable loads kp's files and reports whether they satisfy spec.
func (ca *CA) reusable(kp *KeyPair, spec CertSpec) bool {
	certPEM, err1 := os.ReadFile(kp.CertFile)
	keyPEM, err2 := os.ReadFile(kp.KeyFile)
	if err1 != nil || err2 != nil {
		return false
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return false
	}
	key, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil || !samePublicKey(key, cert.PublicKey) {
		return false
	}
	if err := ca.verify(cert, spec); err != nil {
		return false
	}
	kp.CertPEM, kp.KeyPEM, kp.Cert = certPEM, keyPEM, cert
	return true
}

// verify checks that cert was signed by ca, is valid for RenewBefore more
// and carries exactly what spec asks for.
func (ca *CA) verify(cert *x509.Certificate, spec CertSpec) error {
	now := time.Now()
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:       ca.Pool(),
		CurrentTime: now.Add(RenewBefore),
		KeyUsages:   spec.Usages,
	}); err != nil {
		return err
	}
	if now.Before(cert.NotBefore) {
		return fmt.Errorf("not valid before %s", cert.NotBefore)
	}
	ips := make([]netip.Addr, 0, len(cert.IPAddresses))
	for _, ip := range cert.IPAddresses {
		a, _ := netip.AddrFromSlice(ip)
		ips = append(ips, a.Unmap())
	}
	switch {
	case cert.Subject.CommonName != spec.CommonName:
		return fmt.Errorf("common name %q, want %q", cert.Subject.CommonName, spec.CommonName)
	case !sameSet(cert.Subject.Organization, spec.Organization):
		return fmt.Errorf("organization %q, want %q", cert.Subject.Organization, spec.Organization)
	case !sameSet(cert.DNSNames, spec.DNSNames):
		return fmt.Errorf("DNS names %q, want %q", cert.DNSNames, spec.DNSNames)
	case !sameSet(ips, unmapAll(spec.IPs)):
		return fmt.Errorf("IP addresses %v, want %v", ips, spec.IPs)
	case !sameSet(cert.ExtKeyUsage, spec.Usages):
		return fmt.Errorf("extended key usages %v, want %v", cert.ExtKeyUsage, spec.Usages)
	}
	return nil
}

func (ca *CA) create(kp *KeyPair, spec CertSpec) error {
	key, err := newKey()
	if err != nil {
		return err
	}
	serial, err := randomSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	notAfter := now.Add(LeafValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: spec.CommonName, Organization: slices.Clone(spec.Organization)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  slices.Clone(spec.Usages),
		DNSNames:     slices.Clone(spec.DNSNames),
	}
	for _, a := range spec.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.Unmap().AsSlice()))
	}
	der, err := x509.CreateCertificate(nil, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	certPEM := encodeCert(der)
	// Key first: a crash in between leaves a pair that does not match, which
	// the next call replaces.
	if err := writeAtomic(kp.KeyFile, keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeAtomic(kp.CertFile, certPEM, 0o644); err != nil {
		return err
	}
	kp.CertPEM, kp.KeyPEM, kp.Cert = certPEM, keyPEM, cert
	return nil
}

func unmapAll(as []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, len(as))
	for i, a := range as {
		out[i] = a.Unmap()
	}
	return out
}

// sameSet reports whether a and b hold the same elements, ignoring order
// and duplicates.
func sameSet[T comparable](a, b []T) bool {
	in := func(x T, s []T) bool { return slices.Contains(s, x) }
	for _, x := range a {
		if !in(x, b) {
			return false
		}
	}
	for _, x := range b {
		if !in(x, a) {
			return false
		}
	}
	return true
}
