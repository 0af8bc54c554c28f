package devauth

import (
	"os/exec"
	"strings"
	"testing"
)

// The agent links this package: it imports the standard library and
// internal/clock only, so it adds its own code and nothing else to the
// agent binary.
func TestDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list this package's dependencies: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	allowed := map[string]bool{
		"github.com/uptrust/uptrust/internal/devauth": true,
		"github.com/uptrust/uptrust/internal/clock":   true,
	}
	for _, pkg := range strings.Fields(string(out)) {
		if !allowed[pkg] {
			t.Errorf("devauth depends on %s", pkg)
		}
	}
}
