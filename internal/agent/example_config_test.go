package agent

import (
	"path/filepath"
	"runtime"
	"testing"
)

// TestShippedExampleConfigLoads keeps dist/agent.example.json valid.
func TestShippedExampleConfigLoads(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "dist", "agent.example.json")
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Slot.Backend != "uboot" || len(c.Notify) == 0 {
		t.Fatalf("example config: %+v", c)
	}
}
