package pki

import (
	"fmt"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kubeconfig is a kubeconfig file with one cluster, one user and one
// context, all data embedded.
type Kubeconfig struct {
	Cluster string // cluster and context name; "podnet" when empty
	User    string // user name in the file; "user" when empty
	Server  string // https://host:port
	CAPEM   []byte
	CertPEM []byte
	KeyPEM  []byte
}

// WriteKubeconfig writes a kubeconfig for server that trusts caPEM and
// authenticates with the client certificate certPEM and its key keyPEM. The
// file is 0600: it holds a private key.
func WriteKubeconfig(path, server string, caPEM, certPEM, keyPEM []byte) error {
	return Kubeconfig{Server: server, CAPEM: caPEM, CertPEM: certPEM, KeyPEM: keyPEM}.Write(path)
}

// Config returns the kubeconfig as client-go's API type.
func (k Kubeconfig) Config() *clientcmdapi.Config {
	cluster, user := k.Cluster, k.User
	if cluster == "" {
		cluster = "podnet"
	}
	if user == "" {
		user = "user"
	}
	cfg := clientcmdapi.NewConfig()
	c := clientcmdapi.NewCluster()
	c.Server = k.Server
	c.CertificateAuthorityData = k.CAPEM
	cfg.Clusters[cluster] = c
	a := clientcmdapi.NewAuthInfo()
	a.ClientCertificateData = k.CertPEM
	a.ClientKeyData = k.KeyPEM
	cfg.AuthInfos[user] = a
	ctx := clientcmdapi.NewContext()
	ctx.Cluster = cluster
	ctx.AuthInfo = user
	cfg.Contexts[cluster] = ctx
	cfg.CurrentContext = cluster
	return cfg
}

// Write writes the kubeconfig to path (0600), atomically; an unchanged file
// is left alone.
func (k Kubeconfig) Write(path string) error {
	if k.Server == "" || len(k.CAPEM) == 0 || len(k.CertPEM) == 0 || len(k.KeyPEM) == 0 {
		return fmt.Errorf("pki: kubeconfig %s: server, CA, certificate and key are all required", path)
	}
	data, err := clientcmd.Write(*k.Config())
	if err != nil {
		return fmt.Errorf("pki: kubeconfig %s: %w", path, err)
	}
	if err := writeAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("pki: kubeconfig %s: %w", path, err)
	}
	return nil
}
