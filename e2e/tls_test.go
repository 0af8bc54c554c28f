package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/server"
)

// TestUpdateOverTLS runs an update over HTTPS with the device trusting only
// the CA in its config, and checks that a device without that CA refuses
// the server.
func TestUpdateOverTLS(t *testing.T) {
	w := offered(t, worldOptions{})
	dir := t.TempDir()
	certFile, keyFile, caFile := writeCert(t, dir)
	ctx := context.Background()
	srv, err := server.New(server.Config{Source: w.p, Reports: w.p, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, tlsCfg, err := server.ListenConfig{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile}.Listen(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg == nil || tlsCfg.MinVersion < tls.VersionTLS12 {
		t.Fatalf("TLS config %+v: want TLS 1.2 or later", tlsCfg)
	}
	serve(t, srv, ln, tlsCfg)
	w.url = "https://" + ln.Addr().String()

	trusting := w.device("tls", 0)
	trusting.Config.CAFile = caFile
	w.cycle(trusting)
	w.assertRunning(trusting, "1.1.0")

	stranger := w.device("no-ca", 0)
	chk := w.cycle(stranger)
	if chk.ErrorClass != "network" {
		t.Fatalf("a device without the CA: %+v", chk)
	}
	w.assertRunning(stranger, "1.0.0")

	// A client that trusts the CA but offers TLS 1.2 with a CBC-SHA1
	// suite only is refused; the same client with an AEAD suite is not.
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	for _, tc := range []struct {
		suite uint16
		ok    bool
	}{
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, true},
	} {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(),
			&tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tc.suite}})
		if err == nil {
			c.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("TLS 1.2 with only %s: handshake error %v, want accepted=%v", tls.CipherSuiteName(tc.suite), err, tc.ok)
		}
	}
}

func writeCert(t *testing.T, dir string) (certFile, keyFile, caFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "uptrust test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile, caFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(certFile, "CERTIFICATE", der)
	write(keyFile, "EC PRIVATE KEY", keyDER)
	write(caFile, "CERTIFICATE", caDER)
	return
}
