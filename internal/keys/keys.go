// Package keys generates Ed25519 signing keys, stores them in key files that
// are encrypted at rest with a passphrase, and exposes them through the Signer
// interface that the repository code signs with.
//
// Security model: offline keys (root, top-level targets, product roles) are
// written encrypted with Argon2id (RFC 9106: t=3, 64 MiB, p=4) and
// XChaCha20-Poly1305, under a passphrase that CheckPassphrase accepts; the
// passphrase comes from UPTRUST_PASSPHRASE or a prompt. The KDF name and
// parameters are stored in the file and authenticated with the ciphertext.
// Files written before Argon2id (scrypt N=2^15) still decrypt; Migrate
// rewrites them. Online keys
// (snapshot, timestamp, fleet targets) are needed unattended by the server and
// are stored unencrypted with mode 0600, which is what TUF expects of online
// keys: their compromise is bounded by the offline roles. A key file written
// unencrypted says so in its "encrypted": false field; --dev projects write
// every key that way.
//
// Signer is the seam for hardware-backed keys: a PKCS#11 token or a cloud KMS
// implements the same interface.
package keys

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/atomicfile"
)

// ErrWrongPassphrase is returned when an encrypted key file does not decrypt.
var ErrWrongPassphrase = errors.New("keys: wrong passphrase or corrupted key file")

// ErrNeedPassphrase is returned when an encrypted key is opened without a
// passphrase.
var ErrNeedPassphrase = errors.New("keys: key file is encrypted and no passphrase was given (set UPTRUST_PASSPHRASE)")

// Signer signs TUF metadata with one key. Implementations must be safe for
// concurrent use.
type Signer interface {
	signature.Signer
	// TUFKey returns the public key as TUF metadata lists it.
	TUFKey() *metadata.Key
	// KeyID returns the TUF key id (hex SHA-256 of the canonical public key).
	KeyID() string
}

// Key is an Ed25519 key pair held in memory. It implements Signer.
type Key struct {
	priv ed25519.PrivateKey
	tuf  *metadata.Key
	id   string
	signature.Signer
}

// Generate creates a new random Ed25519 key.
func Generate() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("keys: generate: %w", err)
	}
	return fromPrivate(priv)
}

func fromPrivate(priv ed25519.PrivateKey) (*Key, error) {
	tk, err := metadata.KeyFromPublicKey(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("keys: public key: %w", err)
	}
	id, err := tk.ID()
	if err != nil {
		return nil, fmt.Errorf("keys: key id: %w", err)
	}
	s, err := signature.LoadED25519Signer(priv)
	if err != nil {
		return nil, fmt.Errorf("keys: signer: %w", err)
	}
	return &Key{priv: priv, tuf: tk, id: id, Signer: s}, nil
}

// TUFKey returns the public key in TUF form.
func (k *Key) TUFKey() *metadata.Key { return k.tuf }

// KeyID returns the TUF key id.
func (k *Key) KeyID() string { return k.id }

// PublicKey returns the Ed25519 public key.
func (k *Key) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return k.priv.Public(), nil
}

// file is the on-disk form of a key.
type file struct {
	Type      string `json:"type"`
	Public    string `json:"public"`
	KeyID     string `json:"keyid"`
	Encrypted bool   `json:"encrypted"`
	// Private is the hex Ed25519 seed, present only when not encrypted.
	Private string `json:"private,omitempty"`
	// Encrypted form.
	KDF        *kdfParams `json:"kdf,omitempty"`
	Nonce      []byte     `json:"nonce,omitempty"`
	Ciphertext []byte     `json:"ciphertext,omitempty"`
}

// Save writes the key to path atomically with mode 0600. An empty passphrase
// writes the key unencrypted; any other must pass CheckPassphrase.
func (k *Key) Save(path string, passphrase []byte) error {
	f := file{Type: "ed25519", Public: hex.EncodeToString(k.priv.Public().(ed25519.PublicKey)), KeyID: k.id}
	seed := k.priv.Seed()
	if len(passphrase) == 0 {
		f.Private = hex.EncodeToString(seed)
	} else {
		if err := CheckPassphrase(passphrase); err != nil {
			return err
		}
		f.Encrypted = true
		salt := make([]byte, 16)
		if _, err := io.ReadFull(rand.Reader, salt); err != nil {
			return fmt.Errorf("keys: salt: %w", err)
		}
		f.KDF = newKDF(salt)
		aead, err := deriveAEAD(passphrase, f.KDF)
		if err != nil {
			return err
		}
		f.Nonce = make([]byte, aead.NonceSize())
		if _, err := io.ReadFull(rand.Reader, f.Nonce); err != nil {
			return fmt.Errorf("keys: nonce: %w", err)
		}
		f.Ciphertext = aead.Seal(nil, f.Nonce, seed, f.KDF.additionalData(f.Public))
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("keys: encode: %w", err)
	}
	return atomicfile.WriteFile(path, append(data, '\n'), 0o600)
}

// IsEncrypted reports whether the key file at path is encrypted.
func IsEncrypted(path string) (bool, error) {
	f, err := readFile(path)
	if err != nil {
		return false, err
	}
	return f.Encrypted, nil
}

func readFile(path string) (*file, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("keys: %s is not a key file: %w", path, err)
	}
	if f.Type != "ed25519" {
		return nil, fmt.Errorf("keys: %s: unsupported key type %q", path, f.Type)
	}
	return &f, nil
}

// Load reads a key file. passphrase is ignored for unencrypted files.
func Load(path string, passphrase []byte) (*Key, error) {
	f, err := readFile(path)
	if err != nil {
		return nil, err
	}
	var seed []byte
	if f.Encrypted {
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("%w: %s", ErrNeedPassphrase, path)
		}
		if f.KDF == nil {
			return nil, fmt.Errorf("keys: %s: encrypted key without kdf parameters", path)
		}
		aead, err := deriveAEAD(passphrase, f.KDF)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(f.Nonce) != aead.NonceSize() {
			return nil, fmt.Errorf("keys: %s: bad nonce length", path)
		}
		seed, err = aead.Open(nil, f.Nonce, f.Ciphertext, f.KDF.additionalData(f.Public))
		if err != nil {
			return nil, fmt.Errorf("%w: %s", ErrWrongPassphrase, path)
		}
	} else {
		seed, err = hex.DecodeString(f.Private)
		if err != nil {
			return nil, fmt.Errorf("keys: %s: bad private key: %w", path, err)
		}
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("keys: %s: private key has %d bytes, want %d", path, len(seed), ed25519.SeedSize)
	}
	k, err := fromPrivate(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		return nil, err
	}
	if hex.EncodeToString(k.priv.Public().(ed25519.PublicKey)) != f.Public {
		return nil, fmt.Errorf("keys: %s: private key does not match its public key", path)
	}
	return k, nil
}

// PublicKeyID returns the TUF key id of the key file at path without
// decrypting it: it is computed from the file's public key, not taken from
// its "keyid" field.
func PublicKeyID(path string) (string, error) {
	f, err := readFile(path)
	if err != nil {
		return "", err
	}
	pub, err := hex.DecodeString(f.Public)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("keys: %s: bad public key", path)
	}
	tk, err := metadata.KeyFromPublicKey(ed25519.PublicKey(pub))
	if err != nil {
		return "", fmt.Errorf("keys: %s: public key: %w", path, err)
	}
	id, err := tk.ID()
	if err != nil {
		return "", fmt.Errorf("keys: %s: key id: %w", path, err)
	}
	return id, nil
}
