package cli_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/uptrust/uptrust/internal/cli"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/store/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestProjectOnPostgres: a project whose store is a real PostgreSQL
// database: init --database records it in uptrust.json (no uptrust.db),
// product add and release add write to it, migrate status reads it, and a
// real `uptrust serve` serves it to a go-tuf client that downloads the
// release.
func TestProjectOnPostgres(t *testing.T) {
	dsn := pgtest.URL(t)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "proj")
	mustRun(t, nil, "init", "--dev", "--dir", dir, "--database", dsn)
	if _, err := os.Stat(filepath.Join(dir, "uptrust.db")); !os.IsNotExist(err) {
		t.Errorf("init --database made uptrust.db (%v)", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "uptrust.json"))
	var cfg struct{ Database string }
	if err != nil || json.Unmarshal(b, &cfg) != nil || cfg.Database != dsn {
		t.Errorf("uptrust.json does not name the database %s:\n%s", dsn, b)
	}
	mustRun(t, nil, "product", "add", "thermostat", "--hardware", "rev-a", "--support-until", "2031-12-31", "--dir", dir)
	payload := writeFile(t, tmp, "fw.img", "firmware on postgres")
	mustRun(t, nil, "release", "add", "thermostat", "1.0.0", payload, "--kind", "fix", "--security-version", "1", "--dir", dir)
	mustRun(t, nil, "rollout", "start", "thermostat", "1.0.0", "--percent", "100", "--dir", dir)

	// UPTRUST_DATABASE points any project command at the database, here a
	// directory whose uptrust.json names none (and that has no uptrust.db).
	bare := filepath.Join(tmp, "bare")
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "database")
	nb, _ := json.Marshal(m)
	if err := os.MkdirAll(bare, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bare, "uptrust.json"), nb, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, nil, "release", "list", "--dir", bare); r.code == 0 {
		t.Errorf("release list without a database: %v", r)
	}
	r := mustRun(t, map[string]string{"UPTRUST_DATABASE": dsn}, "release", "list", "--json", "--dir", bare)
	if !strings.Contains(r.stdout, `"version": "1.0.0"`) {
		t.Errorf("release list with UPTRUST_DATABASE:\n%s", r.stdout)
	}

	r = mustRun(t, nil, "migrate", "status", "--dir", dir, "--json")
	var st cli.MigrateStatusJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.Current != st.Known || st.Pending != 0 || len(st.Applied) != st.Known || !strings.HasPrefix(st.Database, "postgres://") {
		t.Errorf("migrate status on the project's database: %+v", st)
	}
	// Another process's SQLite project is not touched: the database holds
	// the project, and a second init there is refused.
	r = run(t, nil, "init", "--dev", "--dir", filepath.Join(tmp, "other"), "--database", dsn)
	if r.code == 0 || !strings.Contains(r.stderr, "already holds a project") {
		t.Errorf("second init into the same database: %v", r)
	}

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
	var addr, database string
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		if rec["msg"] == "serving" {
			addr, _ = rec["addr"].(string)
			database, _ = rec["database"].(string)
		}
		if rec["msg"] == "content loaded" {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if addr == "" {
		t.Fatalf("no serving record with addr; exit %d", <-done)
	}
	if !strings.HasPrefix(database, "postgres://") {
		t.Errorf("serve logs database %q, want the PostgreSQL URL", database)
	}

	trusted, err := os.ReadFile(filepath.Join(dir, "device", "release-root.json"))
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr + deviceapi.ReleaseBase
	tc, err := config.New(base+"/metadata", trusted)
	if err != nil {
		t.Fatal(err)
	}
	tc.RemoteTargetsURL = base + "/targets"
	tc.LocalMetadataDir = t.TempDir()
	tc.LocalTargetsDir = t.TempDir()
	tc.PrefixTargetsWithHash = true
	u, err := updater.New(tc)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Refresh(); err != nil {
		t.Fatalf("go-tuf refresh against serve on PostgreSQL: %v", err)
	}
	ti, err := u.GetTargetInfo("thermostat/1.0.0")
	if err != nil {
		t.Fatalf("target thermostat/1.0.0: %v", err)
	}
	path, body, err := u.DownloadTarget(ti, "", "")
	if err != nil {
		t.Fatalf("download %s: %v", path, err)
	}
	if string(body) != "firmware on postgres" {
		t.Errorf("downloaded %q", body)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exit %d", code)
	}
}

// TestDatabaseFlagErrors: a --database that is not a PostgreSQL URL, an
// unreachable server, and a password in uptrust.json are refused naming
// the problem, the password never shown.
func TestDatabaseFlagErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	r := run(t, nil, "migrate", "status", "--dir", dir, "--database", "mysql://u:pw@h/db")
	if r.code != 2 || !strings.Contains(r.stderr, "not a postgres://") || strings.Contains(r.stderr, "pw@") {
		t.Errorf("migrate status --database mysql://: %v", r)
	}
	r = run(t, nil, "init", "--dev", "--dir", dir, "--database", "postgres://u:s3cret@/db?host="+t.TempDir()+"&connect_timeout=3")
	if r.code == 0 || !strings.Contains(r.stderr, "store/postgres: open postgres://u:xxxxx@/db") || strings.Contains(r.stderr, "s3cret") {
		t.Errorf("init against no server: %v", r)
	}
	r = run(t, map[string]string{"UPTRUST_DATABASE": "postgres://u@/db?host=/nonexistent"}, "migrate", "status", "--dir", dir)
	if r.code == 0 || !strings.Contains(r.stderr, "postgres://u@/db") {
		t.Errorf("migrate status with UPTRUST_DATABASE and no server: %v", r)
	}
	good := devProject(t)
	cfgPath := filepath.Join(good, "uptrust.json")
	b, _ := os.ReadFile(cfgPath)
	b = []byte(strings.Replace(string(b), "{", `{"database": "postgres://u:s3cret@h/db",`, 1))
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, nil, "rollout", "list", "--dir", good)
	if r.code == 0 || !strings.Contains(r.stderr, "holds a password") || strings.Contains(r.stderr, "s3cret") {
		t.Errorf("uptrust.json with a password in database: %v", r)
	}
}

// TestMigrateSQLite: migrate status and up work on the embedded database.
func TestMigrateSQLite(t *testing.T) {
	dir := devProject(t)
	r := mustRun(t, nil, "migrate", "status", "--dir", dir)
	if !strings.Contains(r.stdout, "uptrust.db: schema version") || !strings.Contains(r.stdout, "up to date") {
		t.Errorf("migrate status:\n%s", r.stdout)
	}
	r = mustRun(t, nil, "migrate", "up", "--dir", dir, "--json")
	var st cli.MigrateStatusJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Pending != 0 || st.Current != st.Known || st.Current < 3 {
		t.Errorf("migrate up --json: %+v, %v", st, err)
	}
	r = run(t, nil, "migrate", "status", "--dir", t.TempDir())
	if r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("migrate status without a project: %v", r)
	}
}
