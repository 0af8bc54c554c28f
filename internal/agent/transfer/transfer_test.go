package transfer

import (
	"bytes"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TestNewTarget: the consistent-snapshot URL carries the sha256 before the
// file name, and the hashes are the target's own copy.
func TestNewTarget(t *testing.T) {
	sum := bytes.Repeat([]byte{0xab}, 32)
	tf := &metadata.TargetFiles{Length: 42, Hashes: metadata.Hashes{"sha256": sum, "sha512": make([]byte, 64)}}
	for name, url := range map[string]string{
		"thermostat/1.1.0":                  "https://u.example/repo/release/targets/thermostat/" + string(bytes.Repeat([]byte("ab"), 32)) + ".1.1.0",
		"thermostat/1.1.0.from-1.0.0.delta": "https://u.example/repo/release/targets/thermostat/" + string(bytes.Repeat([]byte("ab"), 32)) + ".1.1.0.from-1.0.0.delta",
		"flat":                              "https://u.example/repo/release/targets/" + string(bytes.Repeat([]byte("ab"), 32)) + ".flat",
	} {
		got := NewTarget("https://u.example", name, tf)
		if got.Name != name || got.URL != url || got.Length != 42 || len(got.Hashes) != 2 || !bytes.Equal(got.Hashes["sha256"], sum) {
			t.Errorf("NewTarget(%q) = %+v, want URL %s", name, got, url)
		}
	}
	got := NewTarget("https://u.example", "flat", tf)
	delete(tf.Hashes, "sha512")
	if len(got.Hashes) != 2 {
		t.Fatal("the target's hashes change with the metadata's map")
	}
}
