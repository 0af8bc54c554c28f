package agent

import (
	"os"
	"path/filepath"
	"testing"
)

// linkDelegated keeps the copy go-tuf reads (products/thermostat.json)
// equal to the role go-tuf saved (products%2Fthermostat.json): a copy that
// differs is rewritten, a copy without a saved role is removed, and a name
// that would leave the cache directory is ignored.
func TestLinkDelegated(t *testing.T) {
	a := testAgent(t, "http://127.0.0.1:1", false)
	dir := a.tufDir("release")
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("products%2Fthermostat.json", "saved v2")
	write("products/thermostat.json", "stale v1")
	write("products/gone.json", "orphan")
	write("..%2Fescape.json", "hostile name")
	write("targets/thermostat%2Fsupport.json", "a cached target")
	if err := a.linkDelegated("release"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "products", "thermostat.json")); err != nil || string(b) != "saved v2" {
		t.Fatalf("products/thermostat.json holds %q (%v), want the saved role", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "products", "gone.json")); !os.IsNotExist(err) {
		t.Fatalf("a copy without a saved role was kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape.json")); !os.IsNotExist(err) {
		t.Fatalf("a role name with .. was written outside the cache: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "targets", "thermostat%2Fsupport.json")); err != nil {
		t.Fatalf("the target cache was touched: %v", err)
	}
}
