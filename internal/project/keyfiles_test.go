package project_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/scrypt"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/keys"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

const strongPass = "correct horse battery staple"

// toLegacy rewrites every offline key of p in the format uptrust wrote
// before Argon2id (scrypt N=2^15, r=8, p=1) under pass.
func toLegacy(t *testing.T, p *project.Project, old, pass string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(p.Dir, "keys", "offline", "*.key"))
	for _, f := range files {
		k, err := keys.Load(f, []byte(old))
		if err != nil {
			t.Fatal(err)
		}
		plain := filepath.Join(t.TempDir(), "plain.key")
		if err := k.Save(plain, nil); err != nil {
			t.Fatal(err)
		}
		var pf struct{ Public, Private string }
		b, _ := os.ReadFile(plain)
		json.Unmarshal(b, &pf)
		seed, _ := hex.DecodeString(pf.Private)
		salt, nonce := make([]byte, 16), make([]byte, chacha20poly1305.NonceSizeX)
		rand.Read(salt)
		rand.Read(nonce)
		key, _ := scrypt.Key([]byte(pass), salt, 1<<15, 8, 1, 32)
		aead, _ := chacha20poly1305.NewX(key)
		out, _ := json.Marshal(map[string]any{"type": "ed25519", "public": pf.Public, "keyid": k.KeyID(), "encrypted": true,
			"kdf":   map[string]any{"name": "scrypt", "n": 1 << 15, "r": 8, "p": 1, "salt": salt},
			"nonce": nonce, "ciphertext": aead.Seal(nil, nonce, seed, []byte(pf.Public))})
		if err := os.WriteFile(f, out, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// kdfNames maps each offline key file's base name to its KDF.
func kdfNames(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	files, _ := filepath.Glob(filepath.Join(dir, "keys", "offline", "*.key"))
	for _, f := range files {
		var kf struct{ KDF struct{ Name string } }
		b, _ := os.ReadFile(f)
		json.Unmarshal(b, &kf)
		out[filepath.Base(f)] = kf.KDF.Name
	}
	return out
}

func TestInitRefusesWeakPassphrase(t *testing.T) {
	dir := t.TempDir()
	for _, weak := range []string{"a", "Password123!", "qwertyqwerty"} {
		p, err := project.Init(t.Context(), dir, project.InitOptions{Options: project.Options{Passphrase: pass(weak)}})
		if err == nil {
			p.Close()
			t.Fatalf("Init with passphrase %q succeeded", weak)
		}
		if !errors.Is(err, keys.ErrWeakPassphrase) || !strings.Contains(err.Error(), "at least 12 characters") {
			t.Errorf("Init with passphrase %q: %v; want a weak-passphrase error saying what is wanted", weak, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("refused Init left %d entries in %s", len(entries), dir)
	}
	// A --dev project has no passphrase; a weak one offered is never asked for.
	asked := false
	p, err := project.Init(t.Context(), t.TempDir(), project.InitOptions{Dev: true, Options: project.Options{
		Passphrase: func() ([]byte, error) { asked = true; return []byte("a"), nil }}})
	if err != nil {
		t.Fatalf("Init --dev: %v", err)
	}
	defer p.Close()
	addProduct(t, p, thermostat())
	if asked {
		t.Error("a --dev project asked for a passphrase")
	}
	if _, err := p.ReencryptKeys(nil); err == nil || !strings.Contains(err.Error(), "--dev") {
		t.Errorf("ReencryptKeys on a --dev project: %v", err)
	}
}

func TestLegacyKeysMigrateOnUnlock(t *testing.T) {
	p := initProd(t, strongPass)
	toLegacy(t, p, strongPass, strongPass)
	dir := p.Dir
	p.Close()
	var warnings []string
	q, err := project.Open(t.Context(), dir, project.Options{Clock: clock.NewFake(t0), Passphrase: pass(strongPass),
		Warn: func(s string) { warnings = append(warnings, s) }})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	addProduct(t, q, thermostat())
	got := kdfNames(t, dir)
	if got["release-targets.key"] != "argon2id" || got["product-thermostat.key"] != "argon2id" {
		t.Errorf("after AddProduct: %v; want the unlocked release-targets key migrated and the new product key on argon2id", got)
	}
	if got["release-root-1.key"] != "scrypt" {
		t.Errorf("release-root-1 was not unlocked but uses %q", got["release-root-1.key"])
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
	done, err := q.ReencryptKeys(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 6 {
		t.Errorf("ReencryptKeys(nil) rewrote %d files, want the 6 still on scrypt: %v", len(done), done)
	}
	for name, kdf := range kdfNames(t, dir) {
		if kdf != "argon2id" {
			t.Errorf("%s uses %q after ReencryptKeys", name, kdf)
		}
		if _, err := keys.Load(filepath.Join(dir, "keys", "offline", name), []byte(strongPass)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestLegacyWeakPassphraseIsReplaced(t *testing.T) {
	p := initProd(t, strongPass)
	toLegacy(t, p, strongPass, "pw")
	dir := p.Dir
	p.Close()
	var warnings []string
	q, err := project.Open(t.Context(), dir, project.Options{Clock: clock.NewFake(t0), Passphrase: pass("pw"),
		Warn: func(s string) { warnings = append(warnings, s) }})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	// The old keys still unlock, but no new key is written under "pw".
	if err := q.AddProduct(t.Context(), thermostat()); !errors.Is(err, keys.ErrWeakPassphrase) {
		t.Fatalf("AddProduct under a weak legacy passphrase: %v, want ErrWeakPassphrase", err)
	}
	if _, err := q.Store.Product(t.Context(), "thermostat"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("product stored despite the refused key: %v", err)
	}
	if len(warnings) == 0 || !strings.Contains(warnings[0], "uptrust keys passphrase") {
		t.Errorf("warnings %q; want one naming uptrust keys passphrase", warnings)
	}
	if got := kdfNames(t, dir)["release-targets.key"]; got != "scrypt" {
		t.Errorf("release-targets rewritten to %q under a weak passphrase", got)
	}
	if _, err := q.ReencryptKeys([]byte("pw2")); !errors.Is(err, keys.ErrWeakPassphrase) {
		t.Fatalf("ReencryptKeys to a weak passphrase: %v", err)
	}
	// Interrupted run: one file already carries the new passphrase.
	first := filepath.Join(dir, "keys", "offline", "fleet-root-1.key")
	if err := keys.Reencrypt(first, []byte("pw"), []byte(strongPass)); err != nil {
		t.Fatal(err)
	}
	done, err := q.ReencryptKeys([]byte(strongPass))
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 6 {
		t.Errorf("ReencryptKeys rewrote %d files, want 6 (one was done already): %v", len(done), done)
	}
	addProduct(t, q, thermostat())
	for name, kdf := range kdfNames(t, dir) {
		if _, err := keys.Load(filepath.Join(dir, "keys", "offline", name), []byte(strongPass)); err != nil || kdf != "argon2id" {
			t.Errorf("%s after the passphrase change: kdf %q, %v", name, kdf, err)
		}
	}
}
