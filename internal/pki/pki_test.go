package pki

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func mustCA(t *testing.T) *CA {
	t.Helper()
	ca, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestEnsureCAIsReused(t *testing.T) {
	dir := t.TempDir()
	ca1, err := EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	ca2, err := EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ca1.Cert.Equal(ca2.Cert) {
		t.Error("second EnsureCA made a new CA instead of reusing the first")
	}
	if !ca1.Cert.IsCA || ca1.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("CA certificate cannot sign certificates")
	}
	checkMode(t, ca1.KeyFile(), 0o600)
	checkMode(t, dir, 0o700)
}

func TestEnsureCAConcurrentCallersAgree(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	certs := make([]*x509.Certificate, 8)
	for i := range certs {
		wg.Go(func() {
			ca, err := EnsureCA(dir)
			if err != nil {
				t.Error(err)
				return
			}
			certs[i] = ca.Cert
		})
	}
	wg.Wait()
	for _, c := range certs[1:] {
		if c == nil || !c.Equal(certs[0]) {
			t.Fatal("concurrent EnsureCA calls produced different CAs")
		}
	}
}

func TestEnsureCARefusesToReplaceABrokenCA(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakCA func(dir string) error
	}{
		{"a CA whose certificate is missing is an error", func(dir string) error {
			return os.Remove(filepath.Join(dir, CACertFile))
		}},
		{"a CA whose key is garbage is an error", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, CAKeyFile), []byte("garbage"), 0o600)
		}},
		{"a CA whose key belongs to another CA is an error", func(dir string) error {
			other, err := EnsureCA(filepath.Join(dir, "other"))
			if err != nil {
				return err
			}
			data, err := os.ReadFile(other.KeyFile())
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, CAKeyFile), data, 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := EnsureCA(dir); err != nil {
				t.Fatal(err)
			}
			if err := tc.breakCA(dir); err != nil {
				t.Fatal(err)
			}
			if _, err := EnsureCA(dir); err == nil {
				t.Error("EnsureCA accepted or replaced a broken CA")
			}
		})
	}
}

func TestIssueClientCarriesIdentity(t *testing.T) {
	ca := mustCA(t)
	kp, err := ca.IssueClient("agent-node-1", "podnet-agent:node-1", []string{"podnet:agents"})
	if err != nil {
		t.Fatal(err)
	}
	chains, err := kp.Cert.Verify(x509.VerifyOptions{
		Roots:     ca.Pool(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil || len(chains) == 0 {
		t.Fatalf("client certificate does not verify against the CA for client auth: %v", err)
	}
	if _, err := kp.Cert.Verify(x509.VerifyOptions{
		Roots:     ca.Pool(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err == nil {
		t.Error("client certificate is also valid for server auth")
	}
	if got := kp.Cert.Subject.CommonName; got != "podnet-agent:node-1" {
		t.Errorf("CN %q", got)
	}
	if got := kp.Cert.Subject.Organization; !slices.Equal(got, []string{"podnet:agents"}) {
		t.Errorf("O %q", got)
	}
	if _, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM); err != nil {
		t.Errorf("certificate and key do not form a TLS key pair: %v", err)
	}
	if _, ok := kp.Cert.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("public key %T, want ECDSA", kp.Cert.PublicKey)
	}
	checkMode(t, kp.KeyFile, 0o600)
	checkMode(t, kp.CertFile, 0o644)
}

func TestIssueServingCarriesNames(t *testing.T) {
	ca := mustCA(t)
	dns := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local", "localhost"}
	ips := []netip.Addr{netip.MustParseAddr("172.30.0.1"), netip.MustParseAddr("127.0.0.1"),
		netip.MustParseAddr("10.96.0.1"), netip.MustParseAddr("fd00::1")}
	kp, err := ca.IssueServing("apiserver", "kube-apiserver", dns, ips)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append(slices.Clone(dns), "172.30.0.1", "127.0.0.1", "10.96.0.1", "fd00::1") {
		if _, err := kp.Cert.Verify(x509.VerifyOptions{
			Roots:     ca.Pool(),
			DNSName:   name,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			t.Errorf("serving certificate not valid for %s: %v", name, err)
		}
	}
	if err := kp.Cert.VerifyHostname("10.96.0.2"); err == nil {
		t.Error("serving certificate valid for an address it was not issued for")
	}
}

func TestIssueReusesOnlyMatchingCertificates(t *testing.T) {
	ca := mustCA(t)
	first, err := ca.IssueClient("admin", "kubernetes-admin", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := ca.IssueClient("admin", "kubernetes-admin", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cert.Equal(first.Cert) {
		t.Error("issuing the same identity again made a new certificate")
	}
	changed, err := ca.IssueClient("admin", "kubernetes-admin", []string{"system:masters", "extra"})
	if err != nil {
		t.Fatal(err)
	}
	if changed.Cert.Equal(first.Cert) {
		t.Error("a changed organization reused the old certificate")
	}

	other, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Put a certificate from another CA in place: it must be replaced.
	foreign, err := other.IssueClient("x", "kubernetes-admin", []string{"system:masters", "extra"})
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, foreign.CertFile, changed.CertFile)
	copyFile(t, foreign.KeyFile, changed.KeyFile)
	replaced, err := ca.IssueClient("admin", "kubernetes-admin", []string{"system:masters", "extra"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replaced.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("a certificate from another CA was reused: %v", err)
	}
}

func TestIssueRejectsPathsAsNames(t *testing.T) {
	ca := mustCA(t)
	for _, name := range []string{"", "../x", "a/b", ".hidden"} {
		if _, err := ca.IssueClient(name, "x", nil); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
}

func TestServiceAccountKeyIsStable(t *testing.T) {
	dir := t.TempDir()
	key1, pub1, err := EnsureServiceAccountKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	data1, _ := os.ReadFile(key1)
	if err := os.Remove(pub1); err != nil {
		t.Fatal(err)
	}
	key2, pub2, err := EnsureServiceAccountKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	data2, _ := os.ReadFile(key2)
	if string(data1) != string(data2) {
		t.Error("service-account key replaced on the second call")
	}
	key, err := ParsePrivateKeyPEM(data2)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := os.ReadFile(pub2)
	if err != nil {
		t.Fatalf("public key not rewritten: %v", err)
	}
	pub, err := parsePublicKeyPEM(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !samePublicKey(key, pub) {
		t.Error("sa.pub does not match sa.key")
	}
	checkMode(t, key2, 0o600)
}

func TestKubeconfigLoadsWithClientcmd(t *testing.T) {
	ca := mustCA(t)
	kp, err := ca.IssueClient("admin", "kubernetes-admin", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := WriteKubeconfig(path, "https://172.30.0.1:6443", ca.CertPEM, kp.CertPEM, kp.KeyPEM); err != nil {
		t.Fatal(err)
	}
	checkMode(t, path, 0o600)
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != "https://172.30.0.1:6443" {
		t.Errorf("host %q", rc.Host)
	}
	if string(rc.CAData) != string(ca.CertPEM) || string(rc.CertData) != string(kp.CertPEM) ||
		string(rc.KeyData) != string(kp.KeyPEM) {
		t.Error("kubeconfig does not carry the CA, certificate and key it was written with")
	}
	st1, _ := os.Stat(path)
	if err := WriteKubeconfig(path, "https://172.30.0.1:6443", ca.CertPEM, kp.CertPEM, kp.KeyPEM); err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(path)
	if !st1.ModTime().Equal(st2.ModTime()) {
		t.Error("writing an unchanged kubeconfig rewrote the file")
	}
	if err := WriteKubeconfig(path, "", ca.CertPEM, kp.CertPEM, kp.KeyPEM); err == nil {
		t.Error("kubeconfig without a server accepted")
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Errorf("%s has mode %o, want %o", path, got, want)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
