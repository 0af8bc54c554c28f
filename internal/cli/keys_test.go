package cli_test

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestWeakPassphraseRefused(t *testing.T) {
	tmp := t.TempDir()
	for _, weak := range []string{"a", "password2024", "letmein!letmein!"} {
		r := run(t, map[string]string{"UPTRUST_PASSPHRASE": weak}, "init", "--dir", filepath.Join(tmp, "p"))
		if r.code != 1 || !strings.Contains(r.stderr, "passphrase too weak") || !strings.Contains(r.stderr, "at least 12 characters") {
			t.Errorf("init with passphrase %q: %v; want exit 1 saying what is wanted", weak, r)
		}
	}
	r := runEnv(t, env(nil, func(string) ([]byte, error) { return []byte("a"), nil }), "init", "--dir", filepath.Join(tmp, "q"))
	if r.code != 1 || !strings.Contains(r.stderr, "at least 12 characters") {
		t.Errorf("init with a prompted passphrase a: %v", r)
	}
	// A --dev project is unencrypted: the passphrase does not matter.
	dev := filepath.Join(tmp, "dev")
	weak := map[string]string{"UPTRUST_PASSPHRASE": "a"}
	mustRun(t, weak, "init", "--dev", "--dir", dev)
	mustRun(t, weak, "product", "add", "thermostat", "--hardware", "rev-a", "--support-until", "2031-12-31", "--dir", dev)
}

func TestKeysPassphrase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "proj")
	old := map[string]string{"UPTRUST_PASSPHRASE": "correct horse battery staple"}
	mustRun(t, old, "init", "--dir", dir)
	if r := mustRun(t, old, "keys", "migrate", "--dir", dir); !strings.Contains(r.stdout, "nothing to do") {
		t.Errorf("keys migrate on a new project:\n%s", r.stdout)
	}
	r := run(t, map[string]string{"UPTRUST_PASSPHRASE": "correct horse battery staple", "UPTRUST_NEW_PASSPHRASE": "a"}, "keys", "passphrase", "--dir", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "new passphrase: keys: passphrase too weak") {
		t.Errorf("keys passphrase to a: %v", r)
	}
	r = run(t, old, "keys", "passphrase", "--dir", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "UPTRUST_NEW_PASSPHRASE") {
		t.Errorf("keys passphrase without a new passphrase: %v", r)
	}
	both := map[string]string{"UPTRUST_PASSPHRASE": "correct horse battery staple", "UPTRUST_NEW_PASSPHRASE": "purple elephant quietly dances"}
	r = mustRun(t, both, "keys", "passphrase", "--dir", dir)
	if n := strings.Count(r.stdout, "re-encrypted "); n != 7 {
		t.Errorf("keys passphrase re-encrypted %d files, want 7:\n%s", n, r.stdout)
	}
	add := []string{"product", "add", "thermostat", "--hardware", "rev-a", "--support-until", "2031-12-31", "--dir", dir}
	if r := run(t, old, add...); r.code != 1 || !strings.Contains(r.stderr, "wrong passphrase") {
		t.Errorf("product add with the old passphrase: %v", r)
	}
	mustRun(t, map[string]string{"UPTRUST_PASSPHRASE": "purple elephant quietly dances"}, add...)
}
