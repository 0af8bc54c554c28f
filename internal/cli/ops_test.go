package cli_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/cli"
	"github.com/uptrust/uptrust/internal/store/sqlite"
)

// TestNotAProject: every command that opens a project refuses a directory
// that is not an initialised one, names what is missing, and creates
// nothing (an empty uptrust.db used to appear and be served as an empty
// project).
func TestNotAProject(t *testing.T) {
	good := devProject(t)
	cmds := [][]string{
		{"release", "list"}, {"product", "list"}, {"rollout", "list"}, {"reports"}, {"audit"},
		{"compliance", "thermostat"}, {"privacy", "report"}, {"purge"}, {"serve", "--listen", "127.0.0.1:0"},
		{"mirror", "export", filepath.Join(t.TempDir(), "m")},
	}
	copyCfg := func(dir string) {
		b, err := os.ReadFile(filepath.Join(good, "uptrust.json"))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, "uptrust.json", string(b))
	}
	for _, tc := range []struct {
		name  string
		setup func(dir string)
		want  string
	}{
		{"no directory", func(dir string) { os.Remove(dir) }, "does not exist"},
		{"empty directory", func(string) {}, "has no uptrust.json"},
		{"no database", copyCfg, "has uptrust.json but no uptrust.db"},
		{"empty database", func(dir string) { copyCfg(dir); writeFile(t, dir, "uptrust.db", "") }, "uptrust.db is empty"},
	} {
		for _, args := range cmds {
			dir := filepath.Join(t.TempDir(), "p")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			tc.setup(dir)
			r := run(t, nil, append(args, "--dir", dir)...)
			if r.code != 1 || !strings.Contains(r.stderr, "not an uptrust project") || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%s: uptrust %s: want exit 1 naming %q:\n%v", tc.name, strings.Join(args, " "), tc.want, r)
			}
			if fi, err := os.Stat(filepath.Join(dir, "uptrust.db")); err == nil && fi.Size() > 0 {
				t.Errorf("%s: uptrust %s created a database", tc.name, strings.Join(args, " "))
			}
		}
	}
}

// TestServeNeedsOnlineKeys: serve refuses to start without the keys it
// re-signs with, naming the directory.
func TestServeNeedsOnlineKeys(t *testing.T) {
	dir := devProject(t)
	if err := os.RemoveAll(filepath.Join(dir, "keys", "online")); err != nil {
		t.Fatal(err)
	}
	r := run(t, nil, "serve", "--dir", dir, "--listen", "127.0.0.1:0")
	if r.code != 1 || !strings.Contains(r.stderr, filepath.Join("keys", "online")+" is missing") {
		t.Errorf("serve without keys/online: %v", r)
	}
}

// TestProjectConfigTypo: a misspelt field of uptrust.json is refused with
// the file, line, column and the nearest known name, by every command.
func TestProjectConfigTypo(t *testing.T) {
	dir := devProject(t)
	path := filepath.Join(dir, "uptrust.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(b), `"retention"`, `"retentoin"`, 1)
	if bad == string(b) {
		t.Fatalf("uptrust.json has no retention field:\n%s", b)
	}
	line := 1 + strings.Count(bad[:strings.Index(bad, `"retentoin"`)], "\n")
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	want := path + ":" + itoa(line) + `:3: unknown field "retentoin" (did you mean "retention"?)`
	for _, args := range [][]string{{"release", "list"}, {"serve"}, {"purge"}} {
		r := run(t, nil, append(args, "--dir", dir)...)
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("uptrust %s: want %q:\n%v", args[0], want, r)
		}
	}
	// Nested objects and values too.
	for from, to := range map[string]string{
		`"audit"`:                `"audti"`,
		`"report_k": 5`:          `"report_k": 0`,
		`"timestamp": "24h0m0s"`: `"timestamp": "a day"`,
	} {
		if !strings.Contains(string(b), from) {
			t.Fatalf("uptrust.json lacks %s:\n%s", from, b)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(b), from, to, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		r := run(t, nil, "release", "list", "--dir", dir)
		wantMsg := map[string]string{`"audti"`: `unknown field "retention.audti" (did you mean "audit"?)`,
			`"report_k": 0`: "report_k: 0 must be positive", `"timestamp": "a day"`: `lifetimes.timestamp: duration "a day"`}[to]
		if r.code != 1 || !strings.Contains(r.stderr, path+":") || !strings.Contains(r.stderr, wantMsg) {
			t.Errorf("%s: want %q:\n%v", to, wantMsg, r)
		}
	}
}

func itoa(n int) string { return jsonNum(n) }

func jsonNum(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestServeJSONLogsAndReadyz: serve --log-format json writes one JSON
// object per line, and /readyz answers 200 for a served project.
func TestServeJSONLogsAndReadyz(t *testing.T) {
	dir := devProject(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, []string{"serve", "--dir", dir, "--listen", "127.0.0.1:0", "--log-format", "json"},
			cli.Env{Stdout: io.Discard, Stderr: pw, Getenv: func(string) string { return "" }})
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var addr string
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		if a, ok := rec["addr"].(string); ok && rec["msg"] == "serving" {
			addr = a
		}
		if rec["msg"] == "content loaded" {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if addr == "" {
		t.Fatalf("no serving record with addr; exit %d", <-done)
	}
	for path, want := range map[string]int{"/readyz": 200, "/healthz": 200} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exit %d", code)
	}
	if r := run(t, nil, "serve", "--dir", dir, "--log-format", "xml"); r.code != 2 || !strings.Contains(r.stderr, `--log-format "xml": want text or json`) {
		t.Errorf("--log-format xml: %v", r)
	}
}

// TestServeNeedsPublishedRoots: a database without the repositories'
// signed roots (a fresh schema, say) is not served.
func TestServeNeedsPublishedRoots(t *testing.T) {
	good := devProject(t)
	dir := filepath.Join(t.TempDir(), "p")
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "keys", "online"), os.DirFS(filepath.Join(good, "keys", "online"))); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(good, "uptrust.json"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "uptrust.json", string(b))
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "uptrust.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	r := run(t, nil, "serve", "--dir", dir, "--listen", "127.0.0.1:0")
	if r.code != 1 || !strings.Contains(r.stderr, "has no published root.json for the release repository") {
		t.Errorf("serve of a database without roots: %v", r)
	}
}
