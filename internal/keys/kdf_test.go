package keys

import (
	"bytes"
	"crypto/ed25519"
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
)

func TestDefaultKDF(t *testing.T) {
	if rfc9106 != [3]uint32{3, 64 * 1024, 4} {
		t.Fatalf("default argon2id t, m_kib, p = %v, want RFC 9106's second option 3, 65536, 4", rfc9106)
	}
}

// saveLegacy writes k the way keys did before Argon2id: scrypt N=2^15, r=8,
// p=1, only the public key as additional data.
func saveLegacy(t *testing.T, k *Key, path string, pass []byte) {
	t.Helper()
	pub := hex.EncodeToString(k.priv.Public().(ed25519.PublicKey))
	salt, nonce := make([]byte, 16), make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(salt)
	rand.Read(nonce)
	key, err := scrypt.Key(pass, salt, 1<<15, 8, 1, 32)
	if err != nil {
		t.Fatal(err)
	}
	aead, _ := chacha20poly1305.NewX(key)
	f := map[string]any{"type": "ed25519", "public": pub, "keyid": k.KeyID(), "encrypted": true,
		"kdf":   map[string]any{"name": "scrypt", "n": 1 << 15, "r": 8, "p": 1, "salt": salt},
		"nonce": nonce, "ciphertext": aead.Seal(nil, nonce, k.priv.Seed(), []byte(pub))}
	data, _ := json.MarshalIndent(f, "", "  ")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func kdfOf(t *testing.T, path string) kdfParams {
	t.Helper()
	f, err := readFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.KDF == nil {
		t.Fatalf("%s has no kdf block", path)
	}
	return *f.KDF
}

func TestNewFilesUseArgon2id(t *testing.T) {
	k, _ := Generate()
	p := filepath.Join(t.TempDir(), "k.key")
	if err := k.Save(p, []byte(strong)); err != nil {
		t.Fatal(err)
	}
	got := kdfOf(t, p)
	if got.Name != "argon2id" || got.Time != argonTime || got.Memory != argonMemory || got.P != argonThreads || len(got.Salt) != 16 || got.N != 0 {
		t.Fatalf("kdf = %+v, want argon2id t=%d m_kib=%d p=%d with a 16-byte salt", got, argonTime, argonMemory, argonThreads)
	}
	if need, err := NeedsMigration(p); err != nil || need {
		t.Fatalf("NeedsMigration = %v, %v for a new file", need, err)
	}
	if ok, err := Migrate(p, []byte(strong)); err != nil || ok {
		t.Fatalf("Migrate = %v, %v for a new file, want false, nil", ok, err)
	}
}

func TestLegacyFileDecryptsAndMigrates(t *testing.T) {
	k, _ := Generate()
	dir := t.TempDir()
	p := filepath.Join(dir, "root-1.key")
	saveLegacy(t, k, p, []byte(strong))
	got, err := Load(p, []byte(strong))
	if err != nil {
		t.Fatalf("legacy scrypt file does not load: %v", err)
	}
	if got.KeyID() != k.KeyID() {
		t.Fatalf("key id %s, want %s", got.KeyID(), k.KeyID())
	}
	if _, err := Load(p, []byte("incorrect horse battery staple")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("legacy file, wrong passphrase: err = %v, want ErrWrongPassphrase", err)
	}
	if need, _ := NeedsMigration(p); !need {
		t.Fatal("NeedsMigration = false for a scrypt file")
	}
	// A weak passphrase decrypts the old file but is not used to write a new one.
	weak := filepath.Join(dir, "weak.key")
	saveLegacy(t, k, weak, []byte("pw"))
	before, _ := os.ReadFile(weak)
	if ok, err := Migrate(weak, []byte("pw")); ok || !errors.Is(err, ErrWeakPassphrase) {
		t.Fatalf("Migrate with a weak passphrase = %v, %v; want ErrWeakPassphrase", ok, err)
	}
	if after, _ := os.ReadFile(weak); !bytes.Equal(before, after) {
		t.Fatal("a refused migration changed the key file")
	}
	// A wrong passphrase leaves the file alone.
	if ok, err := Migrate(p, []byte("incorrect horse battery staple")); ok || !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("Migrate with a wrong passphrase = %v, %v", ok, err)
	}
	ok, err := Migrate(p, []byte(strong))
	if err != nil || !ok {
		t.Fatalf("Migrate = %v, %v", ok, err)
	}
	if kdf := kdfOf(t, p); kdf.Name != "argon2id" {
		t.Fatalf("migrated file uses %q", kdf.Name)
	}
	got, err = Load(p, []byte(strong))
	if err != nil || got.KeyID() != k.KeyID() {
		t.Fatalf("migrated file: %v, %v", got, err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("migrated file mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory after migration holds %d files, want the two key files only", len(entries))
	}
}

// rewrite changes one field of the key file at path.
func rewrite(t *testing.T, path string, change func(f *file)) {
	t.Helper()
	f, err := readFile(path)
	if err != nil {
		t.Fatal(err)
	}
	change(f)
	data, _ := json.Marshal(f)
	os.WriteFile(path, data, 0o600)
}

func TestTamperedEncryptedFile(t *testing.T) {
	k, _ := Generate()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.key")
	if err := k.Save(good, []byte(strong)); err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(good)
	for _, c := range []struct {
		name   string
		change func(f *file)
		want   error
		text   string
	}{
		{"time raised", func(f *file) { f.KDF.Time++ }, ErrWrongPassphrase, "corrupted"},
		{"memory lowered", func(f *file) { f.KDF.Memory /= 2 }, ErrWrongPassphrase, "corrupted"},
		{"lanes changed", func(f *file) { f.KDF.P = 1 }, ErrWrongPassphrase, "corrupted"},
		{"salt flipped", func(f *file) { f.KDF.Salt[0] ^= 1 }, ErrWrongPassphrase, "corrupted"},
		{"ciphertext flipped", func(f *file) { f.Ciphertext[3] ^= 1 }, ErrWrongPassphrase, "corrupted"},
		{"nonce flipped", func(f *file) { f.Nonce[0] ^= 1 }, ErrWrongPassphrase, "corrupted"},
		{"memory 16 GiB", func(f *file) { f.KDF.Memory = 16 << 20 }, ErrBadKDF, "m_kib"},
		{"time 1000", func(f *file) { f.KDF.Time = 1000 }, ErrBadKDF, "argon2id t=1000"},
		{"unknown kdf", func(f *file) { f.KDF.Name = "pbkdf2" }, ErrBadKDF, `unsupported kdf "pbkdf2"`},
		{"short salt", func(f *file) { f.KDF.Salt = f.KDF.Salt[:4] }, ErrBadKDF, "salt of 4 bytes"},
		{"scrypt downgrade", func(f *file) { f.KDF = &kdfParams{Name: "scrypt", N: 1 << 30, R: 8, P: 1, Salt: f.KDF.Salt} }, ErrBadKDF, "scrypt n="},
		{"kdf removed", func(f *file) { f.KDF = nil }, nil, "without kdf parameters"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".key")
			os.WriteFile(p, orig, 0o600)
			rewrite(t, p, c.change)
			_, err := Load(p, []byte(strong))
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) || !strings.Contains(err.Error(), c.text) || !strings.Contains(err.Error(), p) {
				t.Fatalf("err = %v; want %v naming the file and saying %q", err, c.want, c.text)
			}
		})
	}
	if _, err := Load(good, []byte(strong)); err != nil {
		t.Fatalf("untampered file: %v", err)
	}
}

func TestSaveRefusesWeakPassphrase(t *testing.T) {
	k, _ := Generate()
	p := filepath.Join(t.TempDir(), "k.key")
	if err := k.Save(p, []byte("a")); !errors.Is(err, ErrWeakPassphrase) {
		t.Fatalf("Save with passphrase a: %v, want ErrWeakPassphrase", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused Save wrote %s", p)
	}
	// No passphrase means an unencrypted (dev) key file, which is unaffected.
	if err := k.Save(p, nil); err != nil {
		t.Fatalf("unencrypted Save: %v", err)
	}
}

func TestCheckPassphrase(t *testing.T) {
	for _, c := range []struct{ pass, want string }{
		{"a", "1 characters, use at least 12"},
		{"correct horse", ""},
		{strong, ""},
		{"Tr0ub4dor&3xyz", ""},
		{"été à la plage ensoleillée", ""},
		{"password", "8 characters"},
		{"Password123!", "common password"},
		{"P@ssw0rd 2024!!", "common password"},
		{"qwertyqwerty", "common password"},
		{"qwertyuiop123", "common password"},
		{"aaaaaaaaaaaaaaaa", "only 1 different characters"},
		{"abababababababab", "only 2 different characters"},
		{"1234 5678 9012 3456", "only digits"},
		{"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4", "UTF-8"},
	} {
		err := CheckPassphrase([]byte(c.pass))
		if c.want == "" {
			if err != nil {
				t.Errorf("CheckPassphrase(%q) = %v, want nil", c.pass, err)
			}
			continue
		}
		if !errors.Is(err, ErrWeakPassphrase) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "12 characters") {
			t.Errorf("CheckPassphrase(%q) = %v; want ErrWeakPassphrase saying %q and what is wanted", c.pass, err, c.want)
		}
	}
}

func TestReencrypt(t *testing.T) {
	k, _ := Generate()
	dir := t.TempDir()
	p := filepath.Join(dir, "k.key")
	saveLegacy(t, k, p, []byte("pw"))
	const next = "staple battery horse correct"
	if err := Reencrypt(p, []byte("pw"), []byte("pw2")); !errors.Is(err, ErrWeakPassphrase) {
		t.Fatalf("Reencrypt to a weak passphrase: %v, want ErrWeakPassphrase", err)
	}
	if err := Reencrypt(p, []byte("wrong"), []byte(next)); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("Reencrypt with a wrong old passphrase: %v, want ErrWrongPassphrase", err)
	}
	if err := Reencrypt(p, []byte("pw"), []byte(next)); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p, []byte("pw")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("old passphrase after Reencrypt: %v", err)
	}
	if got, err := Load(p, []byte(next)); err != nil || got.KeyID() != k.KeyID() || kdfOf(t, p).Name != "argon2id" {
		t.Fatalf("after Reencrypt: %v, %v, kdf %q", got, err, kdfOf(t, p).Name)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d files after Reencrypt, want 1", len(entries))
	}
	plain := filepath.Join(dir, "plain.key")
	k.Save(plain, nil)
	if err := Reencrypt(plain, nil, []byte(next)); err == nil || !strings.Contains(err.Error(), "not encrypted") {
		t.Fatalf("Reencrypt of an unencrypted file: %v", err)
	}
}
