package agent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/uptrust/uptrust/internal/atomicfile"
	"github.com/uptrust/uptrust/internal/devauth"
)

// The managed device's key.
//
// Invariants: the private key lives only in Config.KeyFile, a regular file
// of mode 0600 (no group or other bits) holding one PEM "PRIVATE KEY"
// block (PKCS #8, Ed25519) and nothing else, written atomically; it is
// never logged, shown or sent. Only its keyid (devauth.KeyID of the public
// key) and, at enrolment, the public key leave the device. A key file that
// breaks any of these is an error naming the file, never replaced: a new
// key would be a new device to the server.

// pemKeyType is the PEM block type of the key file.
const pemKeyType = "PRIVATE KEY"

// ErrNoDeviceKey: the key file does not exist yet (it is created at the
// first check in managed mode).
var ErrNoDeviceKey = errors.New("agent: no device key yet")

// LoadDeviceKey reads and checks the key file at path. A missing file is
// ErrNoDeviceKey (wrapping fs.ErrNotExist).
func LoadDeviceKey(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (%w)", ErrNoDeviceKey, path, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("agent: device key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("agent: device key %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("agent: device key %s has mode %04o: it must be readable by its owner only (chmod 600 %s)", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("agent: device key: %w", err)
	}
	key, err := parseDeviceKey(b)
	if err != nil {
		return nil, fmt.Errorf("agent: device key %s: %w", path, err)
	}
	return key, nil
}

// parseDeviceKey decodes the key file's content. Its errors never quote
// the content.
func parseDeviceKey(b []byte) (ed25519.PrivateKey, error) {
	blk, rest := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("not a PEM file (want one \"PRIVATE KEY\" block, PKCS #8 Ed25519)")
	}
	if blk.Type != pemKeyType {
		return nil, fmt.Errorf("PEM block %q, want %q (PKCS #8 Ed25519)", blk.Type, pemKeyType)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("data after the PEM block")
	}
	der := blk.Bytes
	if len(der) != len(pkcs8Ed25519Prefix)+ed25519.SeedSize || !bytes.HasPrefix(der, pkcs8Ed25519Prefix) {
		return nil, errors.New("the PEM block is not a PKCS #8 Ed25519 private key (RFC 8410, without the optional public key)")
	}
	return ed25519.NewKeyFromSeed(der[len(pkcs8Ed25519Prefix):]), nil
}

// pkcs8Ed25519Prefix is the DER of an Ed25519 PKCS #8 PrivateKeyInfo (RFC
// 8410 section 7) up to the 32-byte seed: SEQUENCE { INTEGER 0, SEQUENCE {
// OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32 bytes) } }. It is the
// form crypto/x509.MarshalPKCS8PrivateKey and openssl genpkey write. The
// agent encodes and decodes it itself: crypto/x509's PKCS #8 code would
// link the RSA and ECDSA key parsers into the agent (about 200 KiB).
var pkcs8Ed25519Prefix = []byte{0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20}

// marshalDeviceKey is key as PKCS #8 DER (see pkcs8Ed25519Prefix).
func marshalDeviceKey(key ed25519.PrivateKey) []byte {
	return append(bytes.Clone(pkcs8Ed25519Prefix), key.Seed()...)
}

// ensureDeviceKey loads the key file, or creates it with a new key when it
// does not exist. The caller holds the state lock, so two agent processes
// cannot both create one.
func ensureDeviceKey(path string) (key ed25519.PrivateKey, created bool, err error) {
	key, err = LoadDeviceKey(path)
	if !errors.Is(err, ErrNoDeviceKey) {
		return key, false, err
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("agent: device key: %w", err)
	}
	der := marshalDeviceKey(key)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("agent: device key: %w", err)
	}
	if err := atomicfile.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: pemKeyType, Bytes: der}), 0o600); err != nil {
		return nil, false, fmt.Errorf("agent: writing the device key: %w", err)
	}
	return key, true, nil
}

// DeviceKeyID is the keyid of the key in path, as the server knows it
// (devauth.KeyID of the public key).
func DeviceKeyID(path string) (string, error) {
	key, err := LoadDeviceKey(path)
	if err != nil {
		return "", err
	}
	return devauth.KeyID(key.Public().(ed25519.PublicKey)), nil
}

// validToken checks an enrolment token's shape, without saying anything
// about its value (it is a secret).
func validToken(t string) error {
	switch {
	case len(t) > 512:
		return errors.New("longer than 512 bytes")
	case strings.TrimSpace(t) != t:
		return errors.New("has leading or trailing white space")
	}
	for _, r := range t {
		if r < 0x21 || r > 0x7e {
			return errors.New("holds a character that is not printable ASCII")
		}
	}
	return nil
}

// enrollmentToken is the configured token, read from its file when the
// config names one ("" when neither is set).
func (c *Config) enrollmentToken() (string, error) {
	if c.EnrollmentTokenFile == "" {
		return c.EnrollmentToken, nil
	}
	b, err := os.ReadFile(c.EnrollmentTokenFile)
	if err != nil {
		return "", fmt.Errorf("agent: enrollment_token_file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if err := validToken(t); err != nil {
		return "", fmt.Errorf("agent: enrollment_token_file %s: the token %w", c.EnrollmentTokenFile, err)
	}
	if t == "" {
		return "", fmt.Errorf("agent: enrollment_token_file %s is empty", c.EnrollmentTokenFile)
	}
	return t, nil
}
