package keys

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// rfc9106 holds the package defaults, read before init lowers them.
var rfc9106 = [3]uint32{argonTime, argonMemory, uint32(argonThreads)}

// Tests use cheap Argon2id parameters; TestDefaultKDF checks the real ones.
func init() { argonTime, argonMemory, argonThreads = 1, 256, 2 }

const strong = "correct horse battery staple"

func TestEncryptedRoundTrip(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "root-1.key")
	if err := k.Save(p, []byte(strong)); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(p)
	if bytes.Contains(raw, []byte("private")) {
		t.Fatalf("encrypted key file holds a plain private key: %s", raw)
	}
	if enc, _ := IsEncrypted(p); !enc {
		t.Fatal("IsEncrypted = false for an encrypted file")
	}
	got, err := Load(p, []byte(strong))
	if err != nil {
		t.Fatal(err)
	}
	if got.KeyID() != k.KeyID() {
		t.Fatalf("key id %s, want %s", got.KeyID(), k.KeyID())
	}
	// The loaded key signs metadata that verifies under the original public key.
	root := metadata.Root()
	root.Signed.AddKey(k.TUFKey(), metadata.ROOT)
	if _, err := root.Sign(got); err != nil {
		t.Fatal(err)
	}
	if err := root.VerifyDelegate(metadata.ROOT, root); err != nil {
		t.Fatalf("signature from loaded key does not verify: %v", err)
	}
}

func TestWrongPassphrase(t *testing.T) {
	k, _ := Generate()
	p := filepath.Join(t.TempDir(), "k.key")
	if err := k.Save(p, []byte(strong)); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p, []byte("incorrect horse battery staple")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("err = %v, want ErrWrongPassphrase", err)
	}
	if _, err := Load(p, nil); !errors.Is(err, ErrNeedPassphrase) {
		t.Fatalf("err = %v, want ErrNeedPassphrase", err)
	}
}

func TestTamperedKeyFile(t *testing.T) {
	k, _ := Generate()
	p := filepath.Join(t.TempDir(), "k.key")
	k.Save(p, nil)
	other, _ := Generate()
	raw, _ := os.ReadFile(p)
	// Swap the public key: the file no longer matches itself.
	pub := other.TUFKey().Value.PublicKey
	s := string(raw)
	i := strings.Index(s, `"public": "`) + len(`"public": "`)
	s = s[:i] + pub + s[i+64:]
	os.WriteFile(p, []byte(s), 0o600)
	if _, err := Load(p, nil); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("err = %v, want mismatch error", err)
	}
	os.WriteFile(p, []byte("{not json"), 0o600)
	if _, err := Load(p, nil); err == nil || !strings.Contains(err.Error(), "not a key file") {
		t.Fatalf("err = %v, want parse error", err)
	}
}

func TestPublicKeyID(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "k.key")
	if err := k.Save(p, []byte(strong)); err != nil {
		t.Fatal(err)
	}
	if id, err := PublicKeyID(p); err != nil || id != k.KeyID() {
		t.Errorf("PublicKeyID = %s, %v; want %s", id, err, k.KeyID())
	}
	// The id comes from the public key, not from the file's keyid field.
	b, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(b, []byte(k.KeyID()), []byte(strings.Repeat("0", 64)), 1), 0o600)
	if id, err := PublicKeyID(p); err != nil || id != k.KeyID() {
		t.Errorf("PublicKeyID with an edited keyid field = %s, %v; want %s", id, err, k.KeyID())
	}
	if _, err := PublicKeyID(filepath.Join(t.TempDir(), "none.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("PublicKeyID of a missing file: %v", err)
	}
}
