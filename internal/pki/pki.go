package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// CA is a certificate authority for a lab or a recorded apiserver, and the
// certificates it issues.
type CA struct {
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	// PEM is the CA certificate, as a kubeconfig's certificate-authority-data.
	PEM []byte
	// Pool holds the CA certificate, for verifying what it issued.
	Pool *x509.CertPool
}

// New makes a CA valid for a week; name goes into its common name.
func New(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name + " lab CA", Organization: []string{"pftap lab"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	p := &CA{caCert: cert, caKey: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Pool: x509.NewCertPool()}
	p.Pool.AddCert(cert)
	return p, nil
}

// Issue makes a certificate for a server (with IP and DNS names) or a
// client.
func (p *CA) Issue(cn string, ips []net.IP, dns []string, client bool) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if client {
		usage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"pftap lab"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
		IPAddresses:  ips,
		DNSNames:     dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// KubeconfigOptions describe a kubeconfig with one cluster, user and context.
type KubeconfigOptions struct {
	Name      string
	Server    string
	CAPEM     []byte // nil: no certificate-authority-data (plain HTTP)
	Token     string
	Namespace string
	ProxyURL  string // the cluster's proxy-url, if any
}

// Kubeconfig renders a kubeconfig file that kubectl and client-go accept.
func Kubeconfig(o KubeconfigOptions) string {
	caLine := ""
	if len(o.CAPEM) > 0 {
		caLine = "    certificate-authority-data: " + base64.StdEncoding.EncodeToString(o.CAPEM) + "\n"
	}
	if o.ProxyURL != "" {
		caLine += "    proxy-url: " + o.ProxyURL + "\n"
	}
	user := "{}"
	if o.Token != "" {
		user = "\n    token: " + o.Token
	}
	ns := o.Namespace
	if ns == "" {
		ns = "default"
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s
%[3]susers:
- name: %[1]s
  user: %[4]s
contexts:
- name: %[1]s
  context:
    cluster: %[1]s
    user: %[1]s
    namespace: %[5]s
current-context: %[1]s
`, o.Name, o.Server, caLine, user, ns)
}

// Fingerprint is the SHA-256 of a certificate's leaf, in hex, for pinning.
func Fingerprint(c tls.Certificate) string {
	if len(c.Certificate) == 0 {
		return ""
	}
	sum := sha256.Sum256(c.Certificate[0])
	return hex.EncodeToString(sum[:])
}

// EncodePEM returns a certificate's leaf and private key as PEM.
func EncodePEM(c tls.Certificate) (certPEM, keyPEM []byte, err error) {
	if len(c.Certificate) == 0 {
		return nil, nil, errors.New("no certificate")
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
