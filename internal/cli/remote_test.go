package cli_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/uptrust/uptrust/internal/access"
	"github.com/uptrust/uptrust/internal/api"
	"github.com/uptrust/uptrust/internal/cli"
)

// served is a running `uptrust serve` with the admin listener.
type served struct {
	dir, public, admin string
	tokens             map[string]string // role -> token
}

// serveWithAdmin runs `uptrust serve --admin-listen 127.0.0.1:0` on a
// development project with thermostat 1.1.0 and 1.2.0 published, one token
// per role (t-ROLE, made with uptrust token create), until the test ends.
func serveWithAdmin(t *testing.T) *served {
	t.Helper()
	dir := devProject(t)
	tmp := t.TempDir()
	for _, v := range []string{"1.1.0", "1.2.0"} {
		payload := writeFile(t, tmp, "img-"+v, strings.Repeat("image "+v, 100))
		mustRun(t, nil, "release", "add", "thermostat", v, payload, "--kind", "security", "--security-version", "2", "--dir", dir)
	}
	s := startServe(t, dir)
	for _, role := range access.Roles {
		r := mustRun(t, nil, "token", "create", "--name", "t-"+string(role), "--role", string(role), "--expires", "1d", "--dir", dir)
		s.tokens[string(role)] = strings.TrimSpace(r.stdout)
	}
	return s
}

// startServe runs `uptrust serve` with the admin listener on dir and the
// extra arguments until the test ends.
func startServe(t *testing.T, dir string, extra ...string) *served {
	t.Helper()
	return startServeEnv(t, dir, func(string) string { return "" }, extra...)
}

// startServeEnv is startServe with the environment getenv.
func startServeEnv(t *testing.T, dir string, getenv func(string) string, extra ...string) *served {
	t.Helper()
	s := &served{dir: dir, tokens: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, append([]string{"serve", "--dir", dir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
			"--log-format", "json"}, extra...),
			cli.Env{Stdout: io.Discard, Stderr: pw, Getenv: getenv})
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exit %d", code)
		}
	})
	sc := bufio.NewScanner(pr)
	loaded := false
	for !loaded && sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		if a, ok := rec["addr"].(string); ok && rec["msg"] == "serving" {
			s.public = a
		}
		if a, ok := rec["admin_addr"].(string); ok {
			s.admin = a
		}
		loaded = rec["msg"] == "content loaded"
	}
	go io.Copy(io.Discard, pr)
	if s.public == "" || s.admin == "" {
		t.Fatalf("serve logged no public (%q) or admin (%q) address", s.public, s.admin)
	}
	return s
}

func (s *served) as(role string, args ...string) []string {
	return append(args, "--server", "http://"+s.admin, "--token", s.tokens[role])
}

// TestAdminListenerSeparation: the public listener answers 404 for the
// management API and the metrics; the admin listener serves both, and
// nothing else of the device side.
func TestAdminListenerSeparation(t *testing.T) {
	s := serveWithAdmin(t)
	get := func(addr, path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Content-Type")
	}
	for _, path := range []string{"/api/v1/openapi.json", "/api/v1/rollouts", "/api/v1/health", "/metrics"} {
		if code, _ := get(s.public, path); code != 404 {
			t.Errorf("public %s: %d, want 404", path, code)
		}
	}
	if code, _ := get(s.public, "/repo/release/metadata/1.root.json"); code != 200 {
		t.Errorf("public /repo/: %d", code)
	}
	if code, _ := get(s.admin, "/metrics"); code != 200 {
		t.Errorf("admin /metrics: %d", code)
	}
	if code, ct := get(s.admin, "/api/v1/openapi.json"); code != 200 || ct != "application/json" {
		t.Errorf("admin openapi.json: %d %s", code, ct)
	}
	if code, ct := get(s.admin, "/repo/release/metadata/1.root.json"); code != 404 || ct != api.ProblemType {
		t.Errorf("admin /repo/: %d %s, want a 404 problem", code, ct)
	}
	if code, _ := get(s.admin, "/api/v1/rollouts"); code != 401 {
		t.Errorf("admin rollouts without a token: %d", code)
	}
	// The settings name both listeners and the retention of uptrust.json.
	req, _ := http.NewRequest("GET", "http://"+s.admin+"/api/v1/settings", nil)
	req.Header.Set("Authorization", "Bearer "+s.tokens["admin"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set api.Settings
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || resp.StatusCode != 200 {
		t.Fatalf("settings: %d %v", resp.StatusCode, err)
	}
	if set.PublicListen != "127.0.0.1:0" || set.AdminListen != "127.0.0.1:0" || set.ReportK != 5 || set.Retention["audit"] != "730d" {
		t.Errorf("settings %+v", set)
	}
}

// TestRemoteCLI: the operator's commands with --server print what the same
// commands print with --dir (the audit log and its verification included,
// with every filter), rollout changes go through the API (audited once
// each with the token's name, role and request id), and a role without
// the right is refused.
func TestRemoteCLI(t *testing.T) {
	s := serveWithAdmin(t)
	r := mustRun(t, nil, s.as("operator", "rollout", "start", "thermostat", "1.1.0", "--percent", "10")...)
	if !strings.Contains(r.stdout, "rollout of thermostat 1.1.0: 10% of devices, running") {
		t.Errorf("rollout start: %v", r)
	}
	mustRun(t, nil, s.as("operator", "rollout", "set-percent", "thermostat", "40")...)
	mustRun(t, nil, s.as("operator", "rollout", "halt", "thermostat")...)
	r = mustRun(t, nil, s.as("operator", "rollout", "resume", "thermostat")...)
	if !strings.Contains(r.stdout, "rollout of thermostat 1.1.0: 40% of devices, running") {
		t.Errorf("rollout resume: %v", r)
	}
	// Replacing the rollout reads its ETag first.
	mustRun(t, nil, s.as("operator", "rollout", "start", "thermostat", "1.2.0", "--percent", "5")...)

	for _, args := range [][]string{
		{"rollout", "list", "--json"}, {"rollout", "list"},
		{"release", "list", "--json"}, {"release", "list", "thermostat"},
		{"product", "list", "--json"}, {"product", "list"},
		{"product", "show", "thermostat", "--json"}, {"product", "show", "thermostat"},
		{"reports", "--json"}, {"reports", "thermostat"},
		{"audit", "--json"}, {"audit"},
		{"audit", "--actor", "t-operator"}, {"audit", "--outcome", "refused", "--json"},
		{"audit", "--action", "rollout.change", "--object", "thermostat/1.1.0", "--json"},
		{"audit", "--since", "2000-01-01", "--until", "2999-01-01T00:00:00Z"}, {"audit", "--since", "1h", "--json"},
		{"audit", "--limit", "3"}, {"audit", "--limit", "2", "--actor", "cli", "--json"},
		{"audit", "verify"}, {"audit", "verify", "--json"},
	} {
		local := mustRun(t, nil, append(args, "--dir", s.dir)...)
		remote := mustRun(t, nil, s.as("auditor", args...)...)
		if local.stdout != remote.stdout {
			t.Errorf("uptrust %s: --server prints\n%s\n--dir prints\n%s", strings.Join(args, " "), remote.stdout, local.stdout)
		}
	}
	r = mustRun(t, nil, s.as("auditor", "audit", "--actor", "t-operator", "--json")...)
	var es []cli.AuditEntryJSON
	if err := json.Unmarshal([]byte(r.stdout), &es); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, e := range es {
		ids[e.RequestID] = true
		if e.Role != "operator" || e.Outcome != "ok" || !strings.HasPrefix(e.Action, "rollout.") {
			t.Errorf("entry by t-operator: %+v", e)
		}
	}
	if len(es) != 5 || len(ids) != 5 || ids[""] {
		t.Errorf("want 5 entries by t-operator with distinct request ids (one per change): %+v", es)
	}
	// Refused: the auditor may not change rollouts, the operator may not
	// read the audit log, an unknown token is not anyone.
	before := mustRun(t, nil, "rollout", "list", "--json", "--dir", s.dir).stdout
	for _, tc := range []struct {
		args []string
		want string
	}{
		{s.as("auditor", "rollout", "halt", "thermostat"), "server: 403 Forbidden: role auditor may not PATCH"},
		{s.as("release-manager", "rollout", "start", "thermostat", "1.1.0", "--percent", "1"), "server: 403 Forbidden"},
		{s.as("operator", "audit"), "server: 403 Forbidden: role operator may not GET /api/v1/audit"},
		{append(s.as("operator", "rollout", "list")[:2], "--server", "http://"+s.admin, "--token", "upt_nobody_at_all_here"), "server: 401 Unauthorized"},
		{s.as("operator", "rollout", "set-percent", "thermostat", "101"), "server: 422"},
		{s.as("operator", "rollout", "halt", "toaster"), "server: no rollout of toaster"},
	} {
		r := run(t, nil, tc.args...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("uptrust %s: want exit 1 and %q\n%v", strings.Join(tc.args, " "), tc.want, r)
		}
	}
	if after := mustRun(t, nil, "rollout", "list", "--json", "--dir", s.dir).stdout; after != before {
		t.Errorf("refused commands changed the rollouts:\n%s\n%s", before, after)
	}
	// The refusals by known tokens are in the log, by them.
	r = mustRun(t, nil, "audit", "--outcome", "refused", "--json", "--dir", s.dir)
	if err := json.Unmarshal([]byte(r.stdout), &es); err != nil {
		t.Fatal(err)
	}
	var refused []string
	for _, e := range es {
		refused = append(refused, e.Actor+" "+e.Action)
	}
	if want := []string{"t-auditor rollout.change", "t-release-manager rollout.start", "t-operator rollout.change"}; !slices.Equal(refused, want) {
		t.Errorf("refused entries %q, want %q", refused, want)
	}

	// A broken chain: --server and --dir say the same, exit 4.
	tamper(t, s.dir, `UPDATE audit SET detail = 'percent 100' WHERE seq = 3`)
	for _, args := range [][]string{{"audit", "verify"}, {"audit", "verify", "--json"}} {
		local := run(t, nil, append(args, "--dir", s.dir)...)
		remote := run(t, nil, s.as("auditor", args...)...)
		if local.code != cli.ExitAuditBroken || remote.code != cli.ExitAuditBroken || local.stdout != remote.stdout || !strings.Contains(local.stdout, "BROKEN at seq 3") && !strings.Contains(local.stdout, `"intact": false`) {
			t.Errorf("uptrust %s on a broken chain: --server %v\n--dir %v", strings.Join(args, " "), remote, local)
		}
	}
}

// TestRemoteTokens: an admin creates, lists and revokes tokens with
// --server; the created token works at once and not after its revocation;
// token list prints what --dir prints; other roles are refused.
func TestRemoteTokens(t *testing.T) {
	s := serveWithAdmin(t)
	r := mustRun(t, nil, s.as("admin", "token", "create", "--name", "ci", "--role", "operator", "--expires", "2d")...)
	ci := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(ci, "uptrust_") || !strings.Contains(r.stderr, "created token ci: role operator") {
		t.Fatalf("token create --server: %v", r)
	}
	if r := mustRun(t, nil, "rollout", "list", "--server", "http://"+s.admin, "--token", ci); !strings.Contains(r.stdout, "no rollouts") && r.code != 0 {
		t.Errorf("the new token: %v", r)
	}
	for _, args := range [][]string{{"token", "list"}, {"token", "list", "--json"}} {
		remote := mustRun(t, nil, s.as("admin", args...)...)
		local := mustRun(t, nil, append(args, "--dir", s.dir)...)
		if local.stdout != remote.stdout || !strings.Contains(local.stdout, "ci") {
			t.Errorf("uptrust %s: --server prints\n%s\n--dir prints\n%s", strings.Join(args, " "), remote.stdout, local.stdout)
		}
	}
	if r := mustRun(t, nil, s.as("admin", "token", "revoke", "ci")...); !strings.HasPrefix(r.stdout, "revoked token ci (role operator, id ") {
		t.Errorf("token revoke --server: %v", r)
	}
	if r := run(t, nil, "rollout", "list", "--server", "http://"+s.admin, "--token", ci); r.code != 1 || !strings.Contains(r.stderr, "server: 401") {
		t.Errorf("the revoked token: %v", r)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{s.as("auditor", "token", "list"), "server: 403 Forbidden: role auditor may not GET /api/v1/tokens"},
		{s.as("operator", "token", "create", "--name", "x", "--role", "admin"), "server: 403 Forbidden"},
		{s.as("admin", "token", "revoke", "ci"), "server: 409"},
		{s.as("admin", "token", "create", "--name", "t-admin", "--role", "admin"), "server: 409"},
	} {
		if r := run(t, nil, tc.args...); r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("uptrust %s: want exit 1 and %q\n%v", strings.Join(tc.args, " "), tc.want, r)
		}
	}
}

// TestServeBootstrapToken: with no valid admin token, serve
// --bootstrap-token-file writes one (0600) that the API accepts as admin;
// with one, it leaves the file alone.
func TestServeBootstrapToken(t *testing.T) {
	dir := devProject(t)
	mustRun(t, nil, "token", "revoke", "admin", "--dir", dir)
	file := filepath.Join(t.TempDir(), "boot-token")
	s := startServe(t, dir, "--bootstrap-token-file", file)
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", file, st.Mode().Perm())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, nil, "token", "list", "--json", "--server", "http://"+s.admin, "--token", strings.TrimSpace(string(b)))
	if !strings.Contains(r.stdout, `"name": "admin-bootstrap-`) {
		t.Errorf("token list with the bootstrap token:\n%s", r.stdout)
	}
	// A valid admin token exists now: a second server writes nothing.
	again := filepath.Join(t.TempDir(), "again")
	startServe(t, dir, "--bootstrap-token-file", again)
	if _, err := os.Stat(again); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: %v, want no file", again, err)
	}
	if r := mustRun(t, nil, "token", "list", "--dir", dir); strings.Count(r.stdout, "admin-bootstrap-") != 1 {
		t.Errorf("tokens after a second bootstrap:\n%s", r.stdout)
	}
}

// TestRemoteFromEnvAndConfig: the server and token come from the
// environment or the client configuration file; --dir wins over both, and
// --dir with --server is a usage error; a bad configuration file is named.
func TestRemoteFromEnvAndConfig(t *testing.T) {
	s := serveWithAdmin(t)
	mustRun(t, nil, s.as("operator", "rollout", "start", "thermostat", "1.1.0", "--percent", "10")...)
	want := mustRun(t, nil, "rollout", "list", "--dir", s.dir).stdout
	vars := map[string]string{"UPTRUST_SERVER": "http://" + s.admin, "UPTRUST_TOKEN": s.tokens["auditor"]}
	if r := mustRun(t, vars, "rollout", "list"); r.stdout != want {
		t.Errorf("from the environment:\n%s", r.stdout)
	}
	cfgDir := t.TempDir()
	writeFile(t, filepath.Join(cfgDir), "client.json", `{"server": "http://`+s.admin+`", "token": "`+s.tokens["auditor"]+`"}`)
	if err := os.MkdirAll(filepath.Join(cfgDir, "uptrust"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(cfgDir, "client.json"), filepath.Join(cfgDir, "uptrust", "client.json")); err != nil {
		t.Fatal(err)
	}
	if r := mustRun(t, map[string]string{"XDG_CONFIG_HOME": cfgDir}, "rollout", "list"); r.stdout != want {
		t.Errorf("from client.json:\n%s", r.stdout)
	}
	// Before the command, as global flags.
	if r := mustRun(t, nil, "--server", "http://"+s.admin, "--token="+s.tokens["auditor"], "rollout", "list"); r.stdout != want {
		t.Errorf("global --server:\n%s", r.stdout)
	}
	if r := mustRun(t, nil, "--server", "http://"+s.admin, "--token", s.tokens["auditor"], "reports"); !strings.Contains(r.stdout, "no reports") {
		t.Errorf("global --server reports:\n%s", r.stdout)
	}
	// --dir wins over the environment.
	if r := mustRun(t, map[string]string{"UPTRUST_SERVER": "http://127.0.0.1:1", "UPTRUST_TOKEN": "x"}, "rollout", "list", "--dir", s.dir); r.stdout != want {
		t.Errorf("--dir with UPTRUST_SERVER set:\n%s", r.stdout)
	}
	for _, tc := range []struct {
		vars map[string]string
		args []string
		code int
		want string
	}{
		{nil, []string{"rollout", "list", "--dir", s.dir, "--server", "http://" + s.admin}, 2, "--dir and --server exclude each other"},
		{nil, []string{"rollout", "list", "--server", "ftp://x"}, 2, `--server "ftp://x": want http://HOST:PORT`},
		{nil, []string{"rollout", "list", "--server", "http://" + s.admin}, 2, "--server needs a token"},
		{map[string]string{"UPTRUST_CLIENT_CONFIG": writeFile(t, cfgDir, "bad.json", `{"server": "http://x", "tokn": "y"}`)},
			[]string{"rollout", "list"}, 1, `bad.json:1:24: unknown field "tokn" (did you mean "token"?)`},
		{nil, []string{"--server", "http://" + s.admin, "release", "add", "thermostat", "2.0.0", "x"}, 2, "--server: uptrust release add does not run against a server"},
		{nil, []string{"--token=x", "init", "--dev"}, 2, "--server: uptrust init --dev does not run against a server"},
		{nil, []string{"--server", "http://" + s.admin, "--token", "x", "rollout", "list", "--dir", s.dir}, 2, "--dir and --server exclude each other"},
	} {
		r := run(t, tc.vars, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("uptrust %s: want exit %d and %q\n%v", strings.Join(tc.args, " "), tc.code, tc.want, r)
		}
	}
	if r := run(t, nil, "serve", "--dir", s.dir, "--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0"); r.code == 0 || !strings.Contains(r.stderr, "0.0.0.0") {
		t.Errorf("serve --admin-listen on all interfaces without TLS: %v", r)
	}
}
