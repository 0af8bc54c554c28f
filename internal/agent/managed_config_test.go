package agent

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"
)

func TestManagedConfig(t *testing.T) {
	p := writeConfig(t, with(baseConfig(), "mode", "managed", "enrollment_token_file", "secrets/token"))
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(p)
	if !c.Managed() || c.KeyFile != filepath.Join(dir, "data", "device.key") || c.EnrollmentTokenFile != filepath.Join(dir, "secrets", "token") {
		t.Fatalf("managed defaults: mode %q key_file %q token file %q", c.Mode, c.KeyFile, c.EnrollmentTokenFile)
	}
	c, err = LoadConfig(writeConfig(t, with(baseConfig(), "mode", "managed", "key_file", "keys/dev.key", "enrollment_token", "abc-123")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(c.KeyFile, filepath.Join("keys", "dev.key")) || !filepath.IsAbs(c.KeyFile) || c.EnrollmentToken != "abc-123" {
		t.Fatalf("key_file %q token %q", c.KeyFile, c.EnrollmentToken)
	}
	c, err = LoadConfig(writeConfig(t, baseConfig()))
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeAnonymous || c.Managed() || c.KeyFile != "" {
		t.Fatalf("default mode %q key_file %q", c.Mode, c.KeyFile)
	}
}

func TestManagedConfigRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  map[string]any
		want string
	}{
		"unknown mode":           {with(baseConfig(), "mode", "fleet"), `mode "fleet" is unknown (want "anonymous" or "managed")`},
		"key_file in anonymous":  {with(baseConfig(), "key_file", "k"), `key_file is set but mode is "anonymous"`},
		"token in anonymous":     {with(baseConfig(), "mode", "anonymous", "enrollment_token", "t"), `enrollment_token is set but mode is "anonymous"`},
		"token file anonymous":   {with(baseConfig(), "enrollment_token_file", "t"), `enrollment_token_file is set but mode is "anonymous"`},
		"both tokens":            {with(baseConfig(), "mode", "managed", "enrollment_token", "t", "enrollment_token_file", "f"), "enrollment_token and enrollment_token_file are both set"},
		"token with white space": {with(baseConfig(), "mode", "managed", "enrollment_token", " t"), "enrollment_token: has leading or trailing white space"},
		"token not ascii":        {with(baseConfig(), "mode", "managed", "enrollment_token", "tök"), "enrollment_token: holds a character that is not printable ASCII"},
		"typo":                   {with(baseConfig(), "mode", "managed", "enrolment_token", "t"), `unknown field "enrolment_token"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tc.cfg))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestDeviceKeyIsStandardPKCS8 checks the agent's own PKCS #8 encoding
// against crypto/x509, both ways, and that other key types are refused.
func TestDeviceKeyIsStandardPKCS8(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	std, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(std, marshalDeviceKey(key)) {
		t.Fatalf("encoding differs from crypto/x509:\n%x\n%x", marshalDeviceKey(key), std)
	}
	got, err := parseDeviceKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: std}))
	if err != nil || !got.Equal(key) {
		t.Fatalf("parsing crypto/x509's encoding: %v", err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(ec)
	if _, err := parseDeviceKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err == nil || !strings.Contains(err.Error(), "not a PKCS #8 Ed25519 private key") {
		t.Fatalf("an ECDSA key: %v", err)
	}
	if _, err := parseDeviceKey(append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: std}), "junk"...)); err == nil || !strings.Contains(err.Error(), "data after the PEM block") {
		t.Fatalf("trailing data: %v", err)
	}
}
