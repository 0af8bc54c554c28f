package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
)

// ErrPlainHTTP is returned by CheckListen when plain HTTP is asked for on an
// address other than loopback without the explicit insecure flag.
var ErrPlainHTTP = errors.New("server: plain HTTP is allowed only on loopback addresses unless explicitly marked insecure")

// CheckListen enforces the listening rule: with TLS any address is fine;
// without TLS the host must be a loopback address ("localhost",
// 127.0.0.0/8, ::1) unless insecureHTTP is set. An empty host means every
// interface and is not loopback. Host names other than "localhost" are not
// resolved and count as not loopback.
func CheckListen(addr string, tls bool, insecureHTTP bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("server: listen address %q: %w", addr, err)
	}
	if tls || insecureHTTP || isLoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("%w (address %q)", ErrPlainHTTP, addr)
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// TLSCipherSuites returns the TLS 1.2 cipher suites the server accepts:
// ECDHE key exchange (forward secrecy) with an AEAD cipher, for ECDSA and
// RSA certificates. The CBC suites (SHA-1 MACs, padding oracles) and the
// RSA key exchange are refused. TLS 1.3 suites are all AEAD and not
// configurable in Go.
func TLSCipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// ListenConfig describes where and how the server listens.
type ListenConfig struct {
	// Addr is a host:port.
	Addr string
	// CertFile and KeyFile are PEM files; both or neither must be set.
	// With them the server speaks TLS 1.2 or later only, and TLS 1.2
	// with the TLSCipherSuites only.
	CertFile, KeyFile string
	// InsecureHTTP allows plain HTTP on an address other than loopback.
	InsecureHTTP bool
}

// Listen checks the configuration with CheckListen, loads the certificate
// if any, and opens the listener. It returns the TLS configuration to pass
// to Run, nil for plain HTTP. Plain HTTP on an address other than loopback
// is logged as a warning.
func (c ListenConfig) Listen(ctx context.Context, logger *slog.Logger) (net.Listener, *tls.Config, error) {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, nil, errors.New("server: listen: certificate and key files must be given together")
	}
	useTLS := c.CertFile != ""
	if err := CheckListen(c.Addr, useTLS, c.InsecureHTTP); err != nil {
		return nil, nil, err
	}
	var tlsConfig *tls.Config
	if useTLS {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("server: listen: load TLS key pair: %w", err)
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: TLSCipherSuites(), Certificates: []tls.Certificate{cert}}
	} else if host, _, _ := net.SplitHostPort(c.Addr); !isLoopbackHost(host) {
		if logger == nil {
			logger = slog.Default()
		}
		logger.Warn("serving plain HTTP on a non-loopback address; use TLS or a TLS-terminating proxy",
			"addr", c.Addr)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", c.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("server: listen: %w", err)
	}
	return ln, tlsConfig, nil
}
