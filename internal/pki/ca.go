package pki

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// File names of the CA in its directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// Validity periods. A leaf is reissued once less than RenewBefore is left.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	LeafValidity = 365 * 24 * time.Hour
	RenewBefore  = 30 * 24 * time.Hour
)

// caCommonName is the subject of a CA made by EnsureCA.
const caCommonName = "podnet-ca"

// CA is a certificate authority whose certificate and key live in Dir. The
// certificates it issues are written to the same directory.
type CA struct {
	Dir     string
	Cert    *x509.Certificate
	CertPEM []byte

	key crypto.Signer
}

// CertFile is the path of the CA certificate.
func (ca *CA) CertFile() string { return filepath.Join(ca.Dir, CACertFile) }

// KeyFile is the path of the CA private key.
func (ca *CA) KeyFile() string { return filepath.Join(ca.Dir, CAKeyFile) }

// EnsureCA loads the CA in dir (ca.crt, ca.key), or creates one when neither
// file exists. A CA that is present but unusable (one file missing, not a CA,
// key not matching, expired) is an error: it is never replaced silently.
func EnsureCA(dir string) (*CA, error) {
	var ca *CA
	err := withDirLock(dir, func() error {
		// The directory holds the CA key: only its owner may list it.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("pki: %w", err)
		}
		var err error
		ca, err = LoadCA(dir)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		_, certErr := os.Stat(filepath.Join(dir, CACertFile))
		_, keyErr := os.Stat(filepath.Join(dir, CAKeyFile))
		if !errors.Is(certErr, fs.ErrNotExist) || !errors.Is(keyErr, fs.ErrNotExist) {
			return err // one of the two exists: do not overwrite it
		}
		ca, err = createCA(dir)
		return err
	})
	return ca, err
}

// LoadCA loads and checks the CA in dir. A missing file gives an error
// matching fs.ErrNotExist.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("pki: load CA: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("pki: load CA: %w", err)
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: load CA %s: %w", filepath.Join(dir, CACertFile), err)
	}
	key, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: load CA %s: %w", filepath.Join(dir, CAKeyFile), err)
	}
	switch now := time.Now(); {
	case !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return nil, fmt.Errorf("pki: %s is not a CA certificate", filepath.Join(dir, CACertFile))
	case !samePublicKey(key, cert.PublicKey):
		return nil, fmt.Errorf("pki: %s does not match %s", filepath.Join(dir, CAKeyFile), filepath.Join(dir, CACertFile))
	case now.After(cert.NotAfter) || now.Before(cert.NotBefore):
		return nil, fmt.Errorf("pki: CA %s is valid only from %s to %s", filepath.Join(dir, CACertFile),
			cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339))
	}
	return &CA{Dir: dir, Cert: cert, CertPEM: certPEM, key: key}, nil
}

func createCA(dir string) (*CA, error) {
	key, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("pki: CA serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caCommonName},
		NotBefore:             now.Add(-time.Hour), // tolerate small clock skew
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w", err)
	}
	certPEM := encodeCert(der)
	if err := writeAtomic(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("pki: write CA: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, CACertFile), certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("pki: write CA: %w", err)
	}
	return &CA{Dir: dir, Cert: cert, CertPEM: certPEM, key: key}, nil
}

// Pool returns a cert pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}
