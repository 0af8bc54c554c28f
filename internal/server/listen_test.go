package server

import (
	"errors"
	"testing"
)

func TestCheckListen(t *testing.T) {
	for _, tc := range []struct {
		addr          string
		tls, insecure bool
		wantErr       error // nil: allowed
		wantAnyErr    bool
	}{
		{addr: "127.0.0.1:8080"},
		{addr: "127.1.2.3:8080"},
		{addr: "[::1]:8080"},
		{addr: "localhost:8080"},
		{addr: "[::ffff:127.0.0.1]:8080"},
		{addr: "0.0.0.0:8080", wantErr: ErrPlainHTTP},
		{addr: ":8080", wantErr: ErrPlainHTTP},
		{addr: "[::]:8080", wantErr: ErrPlainHTTP},
		{addr: "192.0.2.7:8080", wantErr: ErrPlainHTTP},
		{addr: "example.com:8080", wantErr: ErrPlainHTTP},
		{addr: "localhost.example.com:8080", wantErr: ErrPlainHTTP},
		{addr: ":8080", insecure: true},
		{addr: "192.0.2.7:8080", insecure: true},
		{addr: ":8443", tls: true},
		{addr: "0.0.0.0:8443", tls: true},
		{addr: "no-port", wantAnyErr: true},
		{addr: "no-port", tls: true, wantAnyErr: true},
	} {
		err := CheckListen(tc.addr, tc.tls, tc.insecure)
		switch {
		case tc.wantAnyErr:
			if err == nil {
				t.Errorf("CheckListen(%q, tls=%v, insecure=%v) = nil, want an error", tc.addr, tc.tls, tc.insecure)
			}
		case tc.wantErr != nil:
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("CheckListen(%q, tls=%v, insecure=%v) = %v, want %v", tc.addr, tc.tls, tc.insecure, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("CheckListen(%q, tls=%v, insecure=%v) = %v, want nil", tc.addr, tc.tls, tc.insecure, err)
		}
	}
}

func TestListenConfigRejects(t *testing.T) {
	for _, lc := range []ListenConfig{
		{Addr: "127.0.0.1:0", CertFile: "cert.pem"},
		{Addr: "127.0.0.1:0", KeyFile: "key.pem"},
		{Addr: "0.0.0.0:0"},
		{Addr: "127.0.0.1:0", CertFile: "/nonexistent/cert.pem", KeyFile: "/nonexistent/key.pem"},
	} {
		ln, _, err := lc.Listen(t.Context(), nil)
		if err == nil {
			ln.Close()
			t.Errorf("Listen(%+v) succeeded, want an error", lc)
		}
	}
}
