package keys

import (
	"crypto/cipher"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/scrypt"
)

// KDF names as stored in a key file's "kdf" block.
const (
	kdfArgon2id = "argon2id"
	// kdfScrypt is the legacy KDF (N=2^15, r=8, p=1): files using it still
	// decrypt and are rewritten with Argon2id by Migrate.
	kdfScrypt = "scrypt"
)

// ErrBadKDF is returned for a key file whose kdf block names an unknown KDF or
// parameters outside the accepted range. The range bounds what opening a file
// may cost, so a tampered file cannot make Load allocate gigabytes.
var ErrBadKDF = errors.New("keys: bad kdf parameters in key file")

// kdfParams is the "kdf" block of an encrypted key file. Memory is in KiB.
// The Argon2id parameters are bound to the ciphertext as additional data, so
// changing any of them makes the file fail to decrypt.
type kdfParams struct {
	Name string `json:"name"`
	// scrypt
	N int `json:"n,omitempty"`
	R int `json:"r,omitempty"`
	// argon2id
	Time   uint32 `json:"t,omitempty"`
	Memory uint32 `json:"m_kib,omitempty"`
	// P is scrypt's p or Argon2id's parallelism (lanes).
	P    int    `json:"p"`
	Salt []byte `json:"salt"`
}

// argonTime, argonMemory and argonThreads are the Argon2id parameters new
// files get: RFC 9106 section 4, second recommended option (t=3, 64 MiB,
// p=4), for machines where 2 GiB per derivation is too much. They are
// variables so that tests can lower them.
var (
	argonTime    uint32 = 3
	argonMemory  uint32 = 64 * 1024
	argonThreads        = 4
)

// newKDF returns fresh Argon2id parameters with the given salt.
func newKDF(salt []byte) *kdfParams {
	return &kdfParams{Name: kdfArgon2id, Time: argonTime, Memory: argonMemory, P: argonThreads, Salt: salt}
}

// outdated reports whether p is weaker than what new files get.
func (p *kdfParams) outdated() bool {
	return p.Name != kdfArgon2id || p.Time < argonTime || p.Memory < argonMemory
}

// check refuses unknown KDFs and parameters outside sane bounds before any
// work is done.
func (p *kdfParams) check() error {
	if len(p.Salt) < 16 || len(p.Salt) > 64 {
		return fmt.Errorf("%w: salt of %d bytes (want 16..64)", ErrBadKDF, len(p.Salt))
	}
	switch p.Name {
	case kdfArgon2id:
		if p.Time < 1 || p.Time > 16 || p.P < 1 || p.P > 64 ||
			p.Memory < 8*uint32(p.P) || p.Memory > 4<<20 || p.N != 0 || p.R != 0 {
			return fmt.Errorf("%w: argon2id t=%d m_kib=%d p=%d (want t 1..16, m_kib 8p..4 GiB, p 1..64)", ErrBadKDF, p.Time, p.Memory, p.P)
		}
	case kdfScrypt:
		if p.N < 1<<10 || p.N > 1<<20 || p.N&(p.N-1) != 0 || p.R < 1 || p.R > 16 || p.P < 1 || p.P > 16 || p.Time != 0 || p.Memory != 0 {
			return fmt.Errorf("%w: scrypt n=%d r=%d p=%d (want n a power of two 2^10..2^20, r 1..16, p 1..16)", ErrBadKDF, p.N, p.R, p.P)
		}
	default:
		return fmt.Errorf("%w: unsupported kdf %q (want %s or %s)", ErrBadKDF, p.Name, kdfArgon2id, kdfScrypt)
	}
	return nil
}

// additionalData is what the AEAD authenticates besides the ciphertext: the
// public key and, for Argon2id files, the whole parameter block. Legacy
// scrypt files authenticated only the public key.
func (p *kdfParams) additionalData(public string) []byte {
	if p.Name == kdfScrypt {
		return []byte(public)
	}
	return fmt.Appendf(nil, "%s\x00%s t=%d m_kib=%d p=%d salt=%x", public, p.Name, p.Time, p.Memory, p.P, p.Salt)
}

// deriveAEAD checks p and derives the XChaCha20-Poly1305 key from passphrase.
func deriveAEAD(passphrase []byte, p *kdfParams) (cipher.AEAD, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	var key []byte
	switch p.Name {
	case kdfArgon2id:
		key = argon2.IDKey(passphrase, p.Salt, p.Time, p.Memory, uint8(p.P), chacha20poly1305.KeySize)
	case kdfScrypt:
		var err error
		if key, err = scrypt.Key(passphrase, p.Salt, p.N, p.R, p.P, chacha20poly1305.KeySize); err != nil {
			return nil, fmt.Errorf("keys: scrypt: %w", err)
		}
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("keys: cipher: %w", err)
	}
	return aead, nil
}
