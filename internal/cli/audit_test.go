package cli_test

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/uptrust/uptrust/internal/cli"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// auditProject is a dev project whose audit log has seven entries: two
// project.init, the admin token.create, product.add and three token
// changes.
func auditProject(t *testing.T) string {
	t.Helper()
	dir := devProject(t)
	mustRun(t, nil, "token", "create", "--dir", dir, "--name", "ci", "--role", "operator")
	mustRun(t, nil, "token", "create", "--dir", dir, "--name", "audit", "--role", "auditor")
	mustRun(t, nil, "token", "revoke", "--dir", dir, "ci")
	return dir
}

// copyProject copies a closed project directory, so each tampering starts
// from the same intact log.
func copyProject(t *testing.T, dir string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// tamper runs SQL statements on a project's database file by hand, as
// someone with access to the file could.
func tamper(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "uptrust.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// entry reads one stored audit entry.
func entry(t *testing.T, dir string, seq int64) store.AuditEntry {
	t.Helper()
	p := openProject(t, dir)
	es, err := p.AuditQuery(t.Context(), store.AuditFilter{AfterSeq: seq - 1, Limit: 1})
	if err != nil || len(es) != 1 {
		t.Fatalf("entry %d: %v %v", seq, es, err)
	}
	p.Close()
	return es[0]
}

func TestAuditVerify(t *testing.T) {
	dir := auditProject(t)
	r := mustRun(t, nil, "audit", "verify", "--dir", dir)
	if !strings.HasPrefix(r.stdout, "intact: 7 entries from seq 1 to 7\n") || !strings.Contains(r.stdout, "head:   seq 7 hash ") {
		t.Errorf("audit verify on an intact log:\n%v", r)
	}

	// What someone who knows the hash function could forge: seq 4 edited
	// and its hash recomputed.
	forged := entry(t, dir, 4)
	forged.Detail = "nothing happened"
	forgedHash := store.AuditHash(forged)

	for _, tc := range []struct {
		name  string
		stmts []string
		want  string // start of stdout
	}{
		{"edited", []string{`UPDATE audit SET detail = 'percent 100' WHERE seq = 3`},
			"BROKEN at seq 3 (edited): seq 3 was edited: its fields hash to "},
		{"actor edited", []string{`UPDATE audit SET actor = 'someone-else' WHERE seq = 5`},
			"BROKEN at seq 5 (edited)"},
		{"edited, hash recomputed", []string{`UPDATE audit SET detail = 'nothing happened', hash = '` + forgedHash + `' WHERE seq = 4`},
			"BROKEN at seq 5 (link): seq 5 links to hash "},
		{"deleted", []string{`DELETE FROM audit WHERE seq = 4`},
			"BROKEN at seq 4 (missing): entry seq 4 missing between seq 3 and seq 5"},
		{"two deleted", []string{`DELETE FROM audit WHERE seq IN (2, 3)`},
			"BROKEN at seq 2 (missing): entries seq 2 to 3 missing between seq 1 and seq 4"},
		{"last deleted", []string{`DELETE FROM audit WHERE seq = 7`},
			"BROKEN at seq 7 (missing): entry seq 7 missing at the end: the chain head is seq 7"},
		{"first deleted", []string{`DELETE FROM audit WHERE seq = 1`},
			"BROKEN at seq 1 (missing)"},
		{"inserted in the middle", []string{
			`UPDATE audit SET seq = seq + 1000 WHERE seq >= 3`,
			`UPDATE audit SET seq = seq - 999 WHERE seq > 1000`,
			`INSERT INTO audit SELECT 3, time, 'admin', 'admin', 'token.create', 'backdoor', 'created: role admin', 'ok', '', prev_hash, hash FROM audit WHERE seq = 4`,
		}, "BROKEN at seq 3 (inserted): seq 3 was inserted: the entry after it links to seq 2's hash "},
		{"inserted at the end", []string{
			`INSERT INTO audit SELECT 8, time, 'admin', 'admin', 'token.create', 'backdoor', 'created', 'ok', '', hash, hash FROM audit WHERE seq = 7`,
		}, "BROKEN at seq 8 (inserted): seq 8 is beyond the chain head (seq 7)"},
		{"head moved back", []string{`UPDATE audit_chain SET head_seq = 6`},
			"BROKEN at seq 7 (inserted)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := copyProject(t, dir)
			tamper(t, d, tc.stmts...)
			r := run(t, nil, "audit", "verify", "--dir", d)
			if r.code != cli.ExitAuditBroken || !strings.HasPrefix(r.stdout, tc.want) {
				t.Errorf("audit verify: want exit %d and stdout starting %q:\n%v", cli.ExitAuditBroken, tc.want, r)
			}
			if !strings.Contains(r.stderr, "audit log broken at seq") {
				t.Errorf("stderr does not say the log is broken:\n%v", r)
			}
		})
	}

	d := copyProject(t, dir)
	tamper(t, d, `DELETE FROM audit WHERE seq = 4`)
	r = run(t, nil, "audit", "verify", "--json", "--dir", d)
	var v store.AuditVerification
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("audit verify --json: %v\n%v", err, r)
	}
	if r.code != cli.ExitAuditBroken || v.Intact || v.Break == nil || v.Break.Seq != 4 || v.Break.Kind != store.BreakMissing || v.Entries != 6 {
		t.Errorf("audit verify --json after deleting seq 4 = %+v (exit %d)", v, r.code)
	}
}

// TestAuditVerifyAfterPurge: a retention purge removes the oldest entries
// and leaves an anchor the chain is verified from.
func TestAuditVerifyAfterPurge(t *testing.T) {
	dir := auditProject(t)
	p := openProject(t, dir)
	last := entry(t, dir, 7)
	// Remove seq 1 to 7 the way retention does, then add one entry.
	if _, err := p.Store.Purge(t.Context(), store.TableAudit, last.Time.Add(time.Microsecond)); err != nil {
		t.Fatal(err)
	}
	p.Close()
	mustRun(t, nil, "token", "revoke", "--dir", dir, "audit")
	r := mustRun(t, nil, "audit", "verify", "--dir", dir)
	if !strings.HasPrefix(r.stdout, "intact: 1 entries from seq 8 to 8\n") || !strings.Contains(r.stdout, "anchor: seq 7 hash "+last.Hash) {
		t.Errorf("audit verify after a purge:\n%v", r)
	}
	tamper(t, dir, `UPDATE audit_chain SET anchor_hash = '`+store.AuditGenesis+`'`)
	if r := run(t, nil, "audit", "verify", "--dir", dir); r.code != cli.ExitAuditBroken || !strings.HasPrefix(r.stdout, "BROKEN at seq 8 (link)") {
		t.Errorf("audit verify with a forged anchor:\n%v", r)
	}
}

func TestAuditFilters(t *testing.T) {
	dir := auditProject(t)
	p := openProject(t, dir)
	ctx := project.WithActor(t.Context(), project.Actor{Name: "ops", Role: "operator", RequestID: "req-42"})
	if err := p.RecordAudit(ctx, "rollout.change", "thermostat/1.0", store.OutcomeRefused, "role operator: release unknown"); err != nil {
		t.Fatal(err)
	}
	p.Close()

	objects := func(args ...string) string {
		t.Helper()
		r := mustRun(t, nil, append([]string{"audit", "--json", "--dir", dir}, args...)...)
		var es []cli.AuditEntryJSON
		if err := json.Unmarshal([]byte(r.stdout), &es); err != nil {
			t.Fatalf("audit --json %v: %v", args, err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.Object)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "release fleet admin thermostat ci audit ci thermostat/1.0"},
		{[]string{"--action", "token.create"}, "admin ci audit"},
		{[]string{"--object", "ci"}, "ci ci"},
		{[]string{"--actor", "ops"}, "thermostat/1.0"},
		{[]string{"--actor", "cli", "--action", "token.revoke"}, "ci"},
		{[]string{"--outcome", "refused"}, "thermostat/1.0"},
		{[]string{"--limit", "2"}, "ci thermostat/1.0"},
		{[]string{"--since", "2000-01-01", "--until", "2000-01-02"}, ""},
		{[]string{"--since", "1h", "--action", "product.add"}, "thermostat"},
		{[]string{"--until", "2000-01-01T00:00:00Z"}, ""},
	} {
		if got := objects(tc.args...); got != tc.want {
			t.Errorf("audit %v: objects %q, want %q", tc.args, got, tc.want)
		}
	}

	r := mustRun(t, nil, "audit", "--dir", dir, "--actor", "ops")
	for _, want := range []string{"SEQ", "ACTOR", "OUTCOME", "REQUEST", "ops (operator)", "refused", "req-42", "role operator: release unknown"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("audit table lacks %q:\n%s", want, r.stdout)
		}
	}
	r = mustRun(t, nil, "audit", "--dir", dir, "--json", "--actor", "ops")
	for _, want := range []string{`"seq": 8`, `"actor": "ops"`, `"role": "operator"`, `"outcome": "refused"`, `"request_id": "req-42"`, `"prev_hash": "`, `"hash": "`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("audit --json lacks %s:\n%s", want, r.stdout)
		}
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--since", "yesterday"}, 2, `--since "yesterday": want a time`},
		{[]string{"--until", "-3d"}, 2, `--until "-3d"`},
		{[]string{"--limit", "-1"}, 2, "--limit -1"},
		{[]string{"--outcome", "maybe"}, 1, `outcome "maybe": want ok, refused or failed`},
		{[]string{"--since", "2026-03-02", "--until", "2026-03-01"}, 1, "is not after since"},
		{[]string{"extra"}, 2, "audit takes no arguments"},
	} {
		r := run(t, nil, append([]string{"audit", "--dir", dir}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("audit %v: want exit %d and %q:\n%v", tc.args, tc.code, tc.want, r)
		}
	}
}

func TestTokenCommands(t *testing.T) {
	dir := devProject(t)
	r := mustRun(t, nil, "token", "create", "--dir", dir, "--name", "ci", "--role", "operator", "--expires", "30d")
	text := strings.TrimSpace(r.stdout)
	if strings.Count(r.stdout, "\n") != 1 || !strings.HasPrefix(text, "uptrust_") {
		t.Errorf("token create stdout should be the token alone:\n%v", r)
	}
	if !strings.Contains(r.stderr, "created token ci: role operator") || !strings.Contains(r.stderr, "only time it is shown") {
		t.Errorf("token create stderr:\n%v", r)
	}
	p := openProject(t, dir)
	pr, err := p.Authenticate(t.Context(), text)
	if err != nil || pr.Name != "ci" || pr.Role != "operator" {
		t.Errorf("the printed token authenticates as %+v, %v", pr, err)
	}
	if want := p.Clock.Now().Add(30 * 24 * 3600e9); pr.Expires.After(want) || pr.Expires.Before(want.Add(-3600e9)) {
		t.Errorf("token expires %v, want 30 days from now", pr.Expires)
	}
	p.Close()

	r = mustRun(t, nil, "token", "create", "--dir", dir, "--name", "release-bot", "--role", "release-manager", "--json")
	var created cli.TokenJSON
	if err := json.Unmarshal([]byte(r.stdout), &created); err != nil || !strings.HasPrefix(created.Token, "uptrust_"+created.ID+"_") ||
		created.Role != "release-manager" || created.State != "active" {
		t.Errorf("token create --json = %+v, %v", created, err)
	}

	mustRun(t, nil, "token", "revoke", "--dir", dir, "ci")
	r = mustRun(t, nil, "token", "list", "--dir", dir)
	secret := text[strings.LastIndex(text, "_")+1:]
	if strings.Contains(r.stdout, secret) || strings.Contains(r.stdout, created.Token[len(created.Token)-64:]) {
		t.Errorf("token list shows a secret:\n%s", r.stdout)
	}
	for _, want := range []string{"NAME", "admin", "release-bot", "release-manager", "revoked 20"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("token list lacks %q:\n%s", want, r.stdout)
		}
	}
	r = mustRun(t, nil, "token", "list", "--dir", dir, "--json")
	var list []cli.TokenJSON
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, tk := range list {
		states[tk.Name] = tk.State
		if tk.Token != "" {
			t.Errorf("token list --json shows the token of %s", tk.Name)
		}
	}
	if states["admin"] != "active" || states["ci"] != "revoked" || states["release-bot"] != "active" {
		t.Errorf("token list --json states %v", states)
	}
	// The changes are in the audit log.
	r = mustRun(t, nil, "audit", "--dir", dir, "--object", "ci")
	if !strings.Contains(r.stdout, "token.create") || !strings.Contains(r.stdout, "token.revoke") {
		t.Errorf("audit of ci:\n%s", r.stdout)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"create", "--role", "operator"}, 2, "needs --name and --role"},
		{[]string{"create", "--name", "x"}, 2, "needs --name and --role"},
		{[]string{"create", "--name", "x", "--role", "root"}, 2, `unknown role "root" (roles: admin, release-manager, operator, auditor)`},
		{[]string{"create", "--name", "x", "--role", "operator", "--expires", "soon"}, 2, `--expires "soon"`},
		{[]string{"create", "--name", "x", "--role", "operator", "--expires", "0d"}, 2, `--expires "0d"`},
		{[]string{"create", "--name", "Not A Name", "--role", "operator"}, 1, `token name "Not A Name"`},
		{[]string{"create", "--name", "cli", "--role", "operator"}, 1, "reserved"},
		{[]string{"create", "--name", "release-bot", "--role", "operator"}, 1, "a token of that name exists"},
		{[]string{"revoke", "nobody"}, 1, "no such token"},
		{[]string{"revoke", "ci"}, 1, "revoked already"},
		{[]string{"revoke"}, 2, "token revoke takes the token's NAME"},
	} {
		r := run(t, nil, append(append([]string{"token"}, tc.args...), "--dir", dir)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("token %v: want exit %d and %q:\n%v", tc.args, tc.code, tc.want, r)
		}
	}
}

// TestInitWritesAdminToken: init says where the admin token is, and it
// authenticates.
func TestInitWritesAdminToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "proj")
	r := mustRun(t, nil, "init", "--dir", dir, "--dev")
	path := filepath.Join(dir, project.AdminTokenFile)
	if !strings.Contains(r.stdout, "admin token:  "+path+" (0600") {
		t.Errorf("init does not say where the admin token is:\n%v", r)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.stdout+r.stderr, strings.TrimSpace(string(b))) {
		t.Error("init prints the admin token itself")
	}
	p := openProject(t, dir)
	if pr, err := p.Authenticate(t.Context(), strings.TrimSpace(string(b))); err != nil || pr.Role != "admin" {
		t.Errorf("admin-token authenticates as %+v, %v", pr, err)
	}
}

// TestPrivacyReportTokensAndAudit: the privacy report covers the tokens
// and the audit chain with their purposes and retention.
func TestPrivacyReportTokensAndAudit(t *testing.T) {
	dir := devProject(t)
	r := mustRun(t, nil, "privacy", "report", "--dir", dir)
	for _, want := range []string{
		"table tokens",
		"secret_hash (TEXT): hex SHA-256 of the token's random secret; the secret is shown once",
		"last_used (TEXT): UTC day the token last authenticated",
		"a token is deleted 730 days after it was revoked or expired (retention.tokens in uptrust.json)",
		"table audit_chain",
		"anchor_seq (INTEGER)",
		"records that entry's sequence number and hash in audit_chain as the anchor uptrust audit verify starts from",
		"actor (TEXT): who acted: the name of the API token used, or cli",
		"request_id (TEXT)",
		"Every entry records who acted: the name and role of the management API token used (or cli)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("privacy report lacks %q", want)
		}
	}
}
