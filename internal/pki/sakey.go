package pki

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// File names of the service-account key pair.
const (
	SAKeyFile = "sa.key"
	SAPubFile = "sa.pub"
)

// EnsureServiceAccountKey ensures dir/sa.key holds a private key and
// dir/sa.pub its public key (PKIX PEM), and returns both paths.
// kube-apiserver signs service-account tokens with the private key
// (--service-account-signing-key-file) and verifies them with the public one
// (--service-account-key-file); kube-controller-manager signs legacy token
// secrets with the private key. An existing parseable sa.key is kept, so
// tokens issued before stay valid; sa.pub is rewritten from it if needed.
func EnsureServiceAccountKey(dir string) (keyFile, pubFile string, err error) {
	keyFile, pubFile = filepath.Join(dir, SAKeyFile), filepath.Join(dir, SAPubFile)
	err = withDirLock(dir, func() error {
		keyPEM, err := os.ReadFile(keyFile)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		key, perr := ParsePrivateKeyPEM(keyPEM)
		if err != nil || perr != nil {
			k, err := newKey()
			if err != nil {
				return err
			}
			if keyPEM, err = encodeKey(k); err != nil {
				return err
			}
			if err := writeAtomic(keyFile, keyPEM, 0o600); err != nil {
				return err
			}
			key = k
		}
		der, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			return err
		}
		return writeAtomic(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	})
	if err != nil {
		return "", "", fmt.Errorf("pki: service-account key: %w", err)
	}
	return keyFile, pubFile, nil
}

// parsePublicKeyPEM parses the first PKIX public key in PEM data.
func parsePublicKeyPEM(data []byte) (any, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("no public key in PEM data")
		}
		if block.Type == "PUBLIC KEY" {
			return x509.ParsePKIXPublicKey(block.Bytes)
		}
	}
}
