package server

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"slices"
	"testing"
	"time"
)

// certFor returns a self-signed certificate for 127.0.0.1 with key.
func certFor(t *testing.T, key crypto.Signer, pool *x509.CertPool) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "uptrust test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}
}

// TestTLSCipherSuites offers Run's server one TLS 1.2 suite at a time, with
// an ECDSA and an RSA certificate so that every suite's key exchange has a
// certificate, and checks that exactly the ECDHE AEAD suites are accepted.
func TestTLSCipherSuites(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	certs := []tls.Certificate{certFor(t, ecKey, pool), certFor(t, rsaKey, pool)}
	dial := func(addr string, suite uint16) (*tls.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
			&tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}})
	}

	// Control: Go's default server configuration accepts a CBC-SHA1
	// suite, so its refusal below is Run's doing.
	cbc := tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
	ctl, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: certs})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	go func() {
		c, err := ctl.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	if c, err := dial(ctl.Addr().String(), cbc); err != nil {
		t.Fatalf("control: a default TLS server refuses %s: %v", tls.CipherSuiteName(cbc), err)
	} else {
		c.Close()
	}

	s, err := New(Config{Source: &fakeSource{content: &Content{}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	// Go's defaults, as a caller leaves them: Run narrows them.
	r := startRun(t, s, &tls.Config{Certificates: certs})
	aead := TLSCipherSuites()
	for _, cs := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if !slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			continue
		}
		c, err := dial(r.addr, cs.ID)
		switch want := slices.Contains(aead, cs.ID); {
		case want && err != nil:
			t.Errorf("%s refused: %v", cs.Name, err)
		case want && c.ConnectionState().CipherSuite != cs.ID:
			t.Errorf("%s offered, %s negotiated", cs.Name, tls.CipherSuiteName(c.ConnectionState().CipherSuite))
		case !want && err == nil:
			t.Errorf("%s accepted with TLS 1.2; want ECDHE AEAD suites only", cs.Name)
		}
		if c != nil {
			c.Close()
		}
	}
	// TLS 1.3 is unaffected.
	c, err := tls.Dial("tcp", r.addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("TLS 1.3: %v", err)
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("default client negotiated %x, want TLS 1.3", v)
	}
	c.Close()
}

func TestListenConfigCipherSuites(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t, t.TempDir())
	ln, tlsConfig, err := ListenConfig{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile}.Listen(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if !slices.Equal(tlsConfig.CipherSuites, TLSCipherSuites()) {
		t.Errorf("ListenConfig cipher suites %v, want %v", tlsConfig.CipherSuites, TLSCipherSuites())
	}
}

// TestRunBadTLSClosesListener checks that Run closes the listener when
// serving TLS fails before it starts (no certificate), so clients are
// refused rather than left waiting in the backlog.
func TestRunBadTLSClosesListener(t *testing.T) {
	s, err := New(Config{Source: &fakeSource{content: &Content{}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := s.Run(t.Context(), ln, &tls.Config{}); err == nil {
		t.Fatal("Run without a certificate succeeded")
	}
	ln.SetDeadline(time.Now().Add(5 * time.Second)) // only turns a hang into a failure
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("accept after Run failed: %v; want the listener closed", err)
	}
}
