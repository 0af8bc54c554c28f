package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/store"
)

func tableNames(t *testing.T, s *Store) []string {
	t.Helper()
	tables, err := s.Describe(context.Background())
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	var names []string
	for _, tb := range tables {
		names = append(names, tb.Name)
	}
	return names
}

func schemaVersions(t *testing.T, s *Store) []int {
	t.Helper()
	rows, err := s.r.Query(`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

// allVersions is every schema version this program knows, in order.
func allVersions() []int {
	var v []int
	for i := range migrations {
		v = append(v, i+1)
	}
	return v
}

// TestMigrateFromV2 opens a database written by a program that knew
// schema 2: a rollout that was complete then gets a completion at its last
// change, one still running gets none, and the new tables are usable.
func TestMigrateFromV2(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "uptrust.db")
	created := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	full := created.Add(48 * time.Hour)
	old, err := open(ctx, path, migrations[:2])
	if err != nil {
		t.Fatalf("open with schema 2: %v", err)
	}
	err = old.Update(ctx, func(tx store.Tx) error {
		return errors.Join(
			tx.PutProduct(ctx, store.Product{Name: "p", Model: "m", Hardware: []string{"h"}, Created: created}),
			tx.PutProduct(ctx, store.Product{Name: "q", Model: "m", Hardware: []string{"h"}, Created: created}),
			tx.AddRelease(ctx, store.Release{Product: "p", Version: "1.0", Target: "p/1.0", Manifest: []byte("{}"), Created: created}),
			tx.AddRelease(ctx, store.Release{Product: "q", Version: "1.0", Target: "q/1.0", Manifest: []byte("{}"), Created: created}),
			tx.PutRollout(ctx, store.Rollout{Product: "p", Version: "1.0", Percent: 100, Start: created, Updated: full}),
			tx.PutRollout(ctx, store.Rollout{Product: "q", Version: "1.0", Percent: 50, Start: created, Updated: full}),
		)
	})
	if err != nil {
		t.Fatalf("writing schema 2 data: %v", err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	s := openT(t, path)
	defer s.Close()
	if v := schemaVersions(t, s); !slices.Equal(v, allVersions()) {
		t.Errorf("schema versions after migrating: %v, want %v", v, allVersions())
	}
	if cs, err := s.RolloutCompletions(ctx, "p"); err != nil || len(cs) != 1 || cs[0].Version != "1.0" || !cs[0].Reached.Equal(full) {
		t.Errorf("completions of p after migration = %+v, %v; want 1.0 at %v", cs, err, full)
	}
	if cs, err := s.RolloutCompletions(ctx, "q"); err != nil || len(cs) != 0 {
		t.Errorf("completions of q (rollout at 50%%) after migration = %+v, %v; want none", cs, err)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.AddAttestation(ctx, store.Attestation{Product: "p", Item: "CRA-II-5", URL: "https://example.com", Note: "n", Time: created})
	})
	if err != nil {
		t.Errorf("AddAttestation after migration: %v", err)
	}
}

// TestMigrateFromV1 builds a database the way a program that knew only
// migration 1 did, fills it, and opens it with this program: the audit
// table appears and nothing written before is lost. The old program then
// refuses the upgraded file.
func TestMigrateFromV1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "uptrust.db")
	created := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	old, err := open(ctx, path, migrations[:1])
	if err != nil {
		t.Fatalf("open with schema 1: %v", err)
	}
	err = old.Update(ctx, func(tx store.Tx) error {
		return errors.Join(
			tx.PutProduct(ctx, store.Product{Name: "p", Model: "m", Hardware: []string{"h"}, Created: created}),
			tx.AddRelease(ctx, store.Release{Product: "p", Version: "1.0", Target: "p/1.0", Manifest: []byte("{}"), Created: created}),
			tx.PutRollout(ctx, store.Rollout{Product: "p", Version: "1.0", Percent: 20, Start: created, Updated: created}),
			tx.PutMetadata(ctx, store.Metadata{Repo: "release", Role: "root", Version: 1, Body: []byte("root"), Expires: created}),
		)
	})
	if err != nil {
		t.Fatalf("writing schema 1 data: %v", err)
	}
	if err := old.AddReport(ctx, store.ReportCount{Product: "p", Version: "1.0", Outcome: "installed", Count: 3, Day: created}); err != nil {
		t.Fatal(err)
	}
	if v := schemaVersions(t, old); !slices.Equal(v, []int{1}) {
		t.Fatalf("schema versions written by the old program: %v", v)
	}
	if slices.Contains(tableNames(t, old), store.TableAudit) {
		t.Fatal("schema 1 already has the audit table: the test does not start from the old schema")
	}
	gen, err := old.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	s := openT(t, path)
	if v := schemaVersions(t, s); !slices.Equal(v, allVersions()) {
		t.Errorf("schema versions after migrating: %v, want %v", v, allVersions())
	}
	if !slices.Contains(tableNames(t, s), store.TableAudit) {
		t.Error("no audit table after migrating")
	}
	if p, err := s.Product(ctx, "p"); err != nil || !p.Created.Equal(created) || p.Model != "m" {
		t.Errorf("Product after migration = %+v, %v", p, err)
	}
	if _, err := s.Release(ctx, "p", "1.0"); err != nil {
		t.Errorf("Release after migration: %v", err)
	}
	if r, err := s.Rollout(ctx, "p"); err != nil || r.Percent != 20 {
		t.Errorf("Rollout after migration = %+v, %v", r, err)
	}
	if m, err := s.LatestMetadata(ctx, "release", "root"); err != nil || string(m.Body) != "root" {
		t.Errorf("LatestMetadata after migration = %q, %v", m.Body, err)
	}
	if cs, err := s.ReportCounts(ctx); err != nil || len(cs) != 1 || cs[0].Count != 3 {
		t.Errorf("ReportCounts after migration = %+v, %v", cs, err)
	}
	if g, err := s.Generation(ctx); err != nil || g != gen {
		t.Errorf("Generation after migration = %d, %v; want %d", g, err, gen)
	}
	entry := store.AuditEntry{Time: created, Action: "product.add", Object: "p"}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.AddAudit(ctx, entry) }); err != nil {
		t.Fatalf("AddAudit after migration: %v", err)
	}
	if es, err := s.Audit(ctx); err != nil || len(es) != 1 || es[0].Action != "product.add" {
		t.Errorf("Audit after migration = %+v, %v", es, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening migrates nothing again.
	s = openT(t, path)
	if v := schemaVersions(t, s); !slices.Equal(v, allVersions()) {
		t.Errorf("schema versions after reopening: %v, want %v", v, allVersions())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if old, err := open(ctx, path, migrations[:1]); err == nil {
		old.Close()
		t.Error("a program knowing schema 1 opened a schema 2 database")
	} else if !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("old program on the new schema: %v, want ErrSchemaTooNew", err)
	}
}

// TestDescribeAddedTable checks that Describe reads the live file, not a
// list in this program: a table created behind its back is listed with the
// purposes its comments give, and an uncommented column has none.
func TestDescribeAddedTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "uptrust.db")
	if err := openT(t, path).Close(); err != nil {
		t.Fatal(err)
	}
	rawExec(t, path, "CREATE TABLE \"extra table\" ( -- purpose: added by the test\n"+
		"\t\"first col\" TEXT NOT NULL, -- purpose: quoted name\n"+
		"\t[second] INTEGER, -- purpose: bracketed name -- with a dash pair\n"+
		"\tthird BLOB,\n"+
		"\tPRIMARY KEY (\"first col\") -- purpose: not a column\n"+
		")")
	s := openT(t, path)
	defer s.Close()
	tables, err := s.Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(tables, func(tb store.Table) bool { return tb.Name == "extra table" })
	if i < 0 {
		t.Fatalf("Describe does not list the added table: %v", tableNames(t, s))
	}
	want := store.Table{Name: "extra table", Purpose: "added by the test", Columns: []store.Column{
		{Name: "first col", Type: "TEXT", Purpose: "quoted name"},
		{Name: "second", Type: "INTEGER", Purpose: "bracketed name -- with a dash pair"},
		{Name: "third", Type: "BLOB"},
	}}
	got := tables[i]
	if got.Name != want.Name || got.Purpose != want.Purpose || !slices.Equal(got.Columns, want.Columns) {
		t.Errorf("Describe of the added table = %+v\nwant %+v", got, want)
	}
}

// TestMigrateAuditChainFromV3 opens a database written by a program that
// knew schema 3, whose audit log had no chain: its entries are chained in
// time order as successful CLI actions, marked legacy, and new entries
// continue the chain.
func TestMigrateAuditChainFromV3(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "uptrust.db")
	old, err := open(ctx, path, migrations[:3])
	if err != nil {
		t.Fatalf("open with schema 3: %v", err)
	}
	base := time.Date(2025, 1, 2, 3, 4, 5, 6789, time.UTC)
	// Inserted out of time order: the chain follows time, then insertion.
	for _, r := range []struct {
		d              time.Duration
		action, object string
	}{{time.Hour, "release.add", "p/1.0"}, {0, "project.init", "release"}, {time.Hour, "rollout.start", "p/1.0"}} {
		if _, err := old.w.Exec(`INSERT INTO audit (time, action, object, detail) VALUES (?, ?, ?, 'd')`,
			base.Add(r.d).Format(timeLayout), r.action, r.object); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("open with the current schema: %v", err)
	}
	defer s.Close()
	if got := schemaVersions(t, s); !slices.Equal(got, allVersions()) {
		t.Errorf("schema versions %v, want %v", got, allVersions())
	}
	es, err := s.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action)
		if e.Actor != store.ActorCLI || e.Outcome != store.OutcomeOK || e.RequestID != "" {
			t.Errorf("legacy entry %+v: want actor cli, outcome ok, no request id", e)
		}
	}
	if want := []string{"project.init", "release.add", "rollout.start"}; !slices.Equal(actions, want) {
		t.Errorf("legacy entries in order %v, want %v", actions, want)
	}
	if err := s.Update(ctx, func(tx store.Tx) error {
		return tx.AddAudit(ctx, store.AuditEntry{Time: base.Add(2 * time.Hour), Action: "token.create", Object: "ci"})
	}); err != nil {
		t.Fatal(err)
	}
	c, err := s.AuditChain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	es, err = s.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v := store.VerifyAudit(c, es)
	if !v.Intact || v.LegacySeq != 3 || v.FirstSeq != 1 || v.LastSeq != 4 {
		t.Errorf("VerifyAudit after migration = %+v, want intact, legacy up to 3, seq 1 to 4", v)
	}
	if slices.Contains(tableNames(t, s), "audit_legacy") {
		t.Error("audit_legacy is left behind")
	}
}
