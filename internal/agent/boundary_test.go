package agent

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const modulePath = "github.com/uptrust/uptrust"

// forbidden are the packages the agent binary must never link: the
// manufacturer's side (server, storage, web UI, project and repository
// signing, blob storage, the uptrust CLI, the demo) and the SQL driver.
// A package matches if it is one of these or below one of them.
var forbidden = []string{
	modulePath + "/internal/server",
	modulePath + "/internal/store",
	modulePath + "/internal/web",
	modulePath + "/internal/project",
	modulePath + "/internal/repo",
	modulePath + "/internal/blob",
	modulePath + "/internal/cli",
	modulePath + "/internal/demo",
	"modernc.org/sqlite",
}

func isForbidden(pkg string) bool {
	for _, f := range forbidden {
		if pkg == f || strings.HasPrefix(pkg, f+"/") {
			return true
		}
	}
	return false
}

// goList runs the go command in the module root.
func goList(t *testing.T, args ...string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to check the agent's dependencies: %v", err)
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == "/dev/null" {
		t.Fatalf("go env GOMOD = %q: not inside the module", gomod)
	}
	cmd := exec.Command(goBin, append([]string{"list"}, args...)...)
	cmd.Dir = filepath.Dir(gomod)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// forbiddenChains returns, for each forbidden package reachable from the
// packages matched by patterns, one import chain leading to it.
func forbiddenChains(t *testing.T, patterns ...string) []string {
	t.Helper()
	roots := strings.Fields(goList(t, patterns...))
	if len(roots) == 0 {
		t.Fatalf("go list %v matched no package", patterns)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(goList(t, append([]string{"-deps", "-f", `{{.ImportPath}}: {{join .Imports " "}}`}, patterns...)...), "\n") {
		pkg, deps, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		imports[strings.TrimSpace(pkg)] = strings.Fields(deps)
	}
	// Breadth first, so each chain is a shortest one.
	parent := map[string]string{}
	queue := []string{}
	for _, r := range roots {
		if _, seen := parent[r]; !seen {
			parent[r] = ""
			queue = append(queue, r)
		}
	}
	var chains []string
	for len(queue) > 0 {
		pkg := queue[0]
		queue = queue[1:]
		if isForbidden(pkg) {
			chain := []string{pkg}
			for p := parent[pkg]; p != ""; p = parent[p] {
				chain = append([]string{p}, chain...)
			}
			chains = append(chains, strings.Join(chain, " -> "))
			continue
		}
		for _, dep := range imports[pkg] {
			if _, seen := parent[dep]; !seen {
				parent[dep] = pkg
				queue = append(queue, dep)
			}
		}
	}
	// Anything go list reports that the walk missed (it should not).
	if len(chains) == 0 {
		for pkg := range imports {
			if isForbidden(pkg) {
				chains = append(chains, pkg+" (chain unknown)")
			}
		}
	}
	return chains
}

// TestAgentDependencyBoundary keeps the agent binary free of the server
// side: a device must not carry the signing, storage or web code, nor a
// SQL engine.
func TestAgentDependencyBoundary(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, chain := range forbiddenChains(t, "./internal/agent/...", "./cmd/uptrust-agent") {
		t.Errorf("the agent depends on a forbidden package: %s", chain)
	}
}

// TestBoundaryCheckSeesViolations makes sure the check above is not
// vacuous: the manufacturer's command links the server side, and the walk
// must say so with the import chain.
func TestBoundaryCheckSeesViolations(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	chains := forbiddenChains(t, "./cmd/uptrust")
	want := modulePath + "/cmd/uptrust -> " + modulePath + "/internal/cli"
	for _, c := range chains {
		if c == want {
			return
		}
	}
	t.Fatalf("boundary check of cmd/uptrust found %q, want the chain %q", chains, want)
}
