package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/agent/slot/fileslot"
)

// newUnprovisioned writes an agent config for a file-backend device whose
// slot directory does not exist yet, with the project's roots.
func newUnprovisioned(t *testing.T) (dir, cfg string) {
	t.Helper()
	dir = t.TempDir()
	copyRoots(t, dir)
	c := map[string]any{"server": "https://updates.example.com", "product": "thermostat", "hardware": "rev-a",
		"data_dir": "data", "release_root": "release.json", "fleet_root": "fleet.json", "slot": map[string]any{"backend": "file", "dir": "slots"}}
	b, _ := json.Marshal(c)
	cfg = filepath.Join(dir, "agent.json")
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, cfg
}

// listTree lists every path under dir with its contents, to compare a
// directory before and after a command.
func listTree(t *testing.T, dir string) string {
	t.Helper()
	var out strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		out.WriteString(p + " " + fi.Mode().String() + "\n")
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out.Write(b)
			out.WriteString("\n")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func agentMain(t *testing.T, cfg string, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), append([]string{"--config", cfg}, args...), Env{Stdout: &stdout, Stderr: &stderr})
	return code, stderr.String()
}

// TestProvisionValidatesFirst: each bad input is refused with a message
// naming it, and the directory is left exactly as it was.
func TestProvisionValidatesFirst(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) []string
		want  string
		code  int // 1 unless set
	}{
		{"no version", func(t *testing.T, dir string) []string { return []string{"--factory-image", writeImage(t, dir)} }, "--version is required", 2},
		{"version not semver", func(t *testing.T, dir string) []string {
			return []string{"--version", "1.0", "--factory-image", writeImage(t, dir)}
		}, `--version "1.0": release: invalid version "1.0"`, 2},
		{"missing release root", func(t *testing.T, dir string) []string {
			os.Remove(filepath.Join(dir, "release.json"))
			return []string{"--version", "1.0.0", "--factory-image", writeImage(t, dir)}
		}, "release_root: open ", 0},
		{"root not TUF", func(t *testing.T, dir string) []string {
			os.WriteFile(filepath.Join(dir, "fleet.json"), []byte(`{"signed":{"_type":"targets"}}`), 0o644)
			return []string{"--version", "1.0.0", "--factory-image", writeImage(t, dir)}
		}, "fleet.json is not TUF root metadata", 0},
		{"root with a broken signature", func(t *testing.T, dir string) []string {
			p := filepath.Join(dir, "release.json")
			b, _ := os.ReadFile(p)
			var m map[string]any
			json.Unmarshal(b, &m)
			m["signed"].(map[string]any)["version"] = 7
			b, _ = json.Marshal(m)
			os.WriteFile(p, b, 0o644)
			return []string{"--version", "1.0.0", "--factory-image", writeImage(t, dir)}
		}, "is not signed by its own root keys", 0},
		{"same root twice", func(t *testing.T, dir string) []string {
			b, _ := os.ReadFile(filepath.Join(dir, "release.json"))
			os.WriteFile(filepath.Join(dir, "fleet.json"), b, 0o644)
			return []string{"--version", "1.0.0", "--factory-image", writeImage(t, dir)}
		}, "are the same root", 0},
		{"no factory image", func(t *testing.T, dir string) []string { return []string{"--version", "1.0.0"} }, "--factory-image FILE", 0},
		{"factory image missing", func(t *testing.T, dir string) []string {
			return []string{"--version", "1.0.0", "--factory-image", filepath.Join(dir, "nope.img")}
		}, "--factory-image: stat", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, cfg := newUnprovisioned(t)
			args := tc.setup(t, dir)
			before := listTree(t, dir)
			code, stderr := agentMain(t, cfg, append([]string{"provision"}, args...)...)
			want := tc.code
			if want == 0 {
				want = 1
			}
			if code != want || !strings.Contains(stderr, tc.want) {
				t.Errorf("provision %v: exit %d, stderr %q; want %d and %q", args, code, stderr, want, tc.want)
			}
			if after := listTree(t, dir); after != before {
				t.Errorf("a refused provision changed the directory:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

func writeImage(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "factory.img")
	if err := os.WriteFile(p, []byte("factory image"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProvisionFileBackend: provision --factory-image creates the file
// backend's device and the agent's state, so status works next; a second
// provision is refused.
func TestProvisionFileBackend(t *testing.T) {
	dir, cfg := newUnprovisioned(t)
	img := writeImage(t, dir)
	if code, stderr := agentMain(t, cfg, "provision", "--version", "1.0.0", "--security-version", "2", "--factory-image", img); code != 0 {
		t.Fatalf("provision: %d %s", code, stderr)
	}
	b, err := os.ReadFile(filepath.Join(dir, "slots", fileslot.ImageFile("a")))
	if err != nil || string(b) != "factory image" {
		t.Fatalf("slot a: %q %v", b, err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main(t.Context(), []string{"--config", cfg, "status", "--json"}, Env{Stdout: &stdout, Stderr: &stderr}); code != 0 ||
		!strings.Contains(stdout.String(), `"1.0.0"`) {
		t.Errorf("status after provision: %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	if code, stderr := agentMain(t, cfg, "provision", "--version", "1.0.0"); code != 1 || !strings.Contains(stderr, "provisioned already") {
		t.Errorf("second provision: %d %s", code, stderr)
	}
}

// TestConfigTypoThroughCLI: every command refuses an agent config with a
// misspelt field, naming the file, line, column and the nearest name.
func TestConfigTypoThroughCLI(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.json")
	doc := "{\n  \"server\": \"https://updates.example.com\",\n  \"download_rate_limt\": \"1MiB\"\n}\n"
	if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	want := cfg + `:3:3: unknown field "download_rate_limt" (did you mean "download_rate_limit"?)`
	for _, args := range [][]string{{"status"}, {"check"}, {"provision", "--version", "1.0.0"}} {
		if code, stderr := agentMain(t, cfg, args...); code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%v: exit %d, stderr %q; want %q", args, code, stderr, want)
		}
	}
}
