package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openT(t, filepath.Join(t.TempDir(), "uptrust.db"))
	})
}

// openT opens path and fails the test on error. The caller closes it.
func openT(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dir with ?#% chars", "uptrust.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	body := []byte("signed\x00root")
	s := openT(t, path)
	err := s.Update(ctx, func(tx store.Tx) error {
		return errors.Join(
			tx.PutProduct(ctx, store.Product{Name: "p", Model: "m", Hardware: []string{"h"}, Created: created}),
			tx.AddRelease(ctx, store.Release{Product: "p", Version: "1.0", Target: "p/1.0", Manifest: []byte("{}"), Created: created}),
			tx.PutMetadata(ctx, store.Metadata{Repo: "release", Role: "root", Version: 1, Body: body, Expires: created}),
		)
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	gen, err := s.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The file is where it was asked to be, not at a URI-mangled path.
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v", err)
	}

	s = openT(t, path)
	defer s.Close()
	if p, err := s.Product(ctx, "p"); err != nil || !p.Created.Equal(created) {
		t.Errorf("Product after reopen = %+v, %v", p, err)
	}
	if _, err := s.Release(ctx, "p", "1.0"); err != nil {
		t.Errorf("Release after reopen: %v", err)
	}
	if m, err := s.LatestMetadata(ctx, "release", "root"); err != nil || !bytes.Equal(m.Body, body) {
		t.Errorf("LatestMetadata after reopen = %q, %v", m.Body, err)
	}
	if g, err := s.Generation(ctx); err != nil || g != gen {
		t.Errorf("Generation after reopen = %d, %v; want %d", g, err, gen)
	}
}

// rawExec runs statements on the file with the bare driver.
func rawExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "uptrust.db")
	if err := openT(t, path).Close(); err != nil {
		t.Fatal(err)
	}
	rawExec(t, path, `INSERT INTO schema_migrations (version, applied) VALUES (999, 'later')`)
	s, err := Open(context.Background(), path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	}
	if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "999") || !strings.Contains(err.Error(), path) {
		t.Errorf("Open error = %q; want ErrSchemaTooNew naming the path and version 999", err)
	}
}

func TestRefusesForeignDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	rawExec(t, path, `CREATE TABLE accounts (id INTEGER PRIMARY KEY)`)
	s, err := Open(context.Background(), path)
	if err == nil {
		s.Close()
		t.Fatal("Open of another program's database succeeded")
	}
	if !errors.Is(err, ErrNotUptrust) {
		t.Errorf("Open error = %q; want ErrNotUptrust", err)
	}
}

func TestRefusesCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "garbage.db")
	junk := make([]byte, 8192)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(junk)
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a garbage file succeeded")
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.HasPrefix(err.Error(), "store/sqlite: ") {
		t.Errorf("Open error = %q; want ErrCorrupt naming the path", err)
	}
	// Refusing must not have altered the file.
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, junk) {
		t.Errorf("garbage file changed by Open (err %v)", err)
	}
}

func TestPragmas(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "uptrust.db"))
	defer s.Close()
	ctx := context.Background()
	want := map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "5000"}
	for pragma, v := range want {
		var got string
		if err := s.w.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", pragma, err)
		}
		if got != v {
			t.Errorf("writer PRAGMA %s = %s, want %s", pragma, got, v)
		}
	}
	// Readers cannot write, even by mistake.
	if _, err := s.r.ExecContext(ctx, `DELETE FROM products`); err == nil {
		t.Error("write through the read pool succeeded")
	}
}

// TestSchemaComments checks that every table and column in the live schema
// says what it holds, for the privacy report generated from sqlite_master.
func TestSchemaComments(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "uptrust.db"))
	defer s.Close()
	rows, err := s.r.Query(`SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	tables := 0
	for rows.Next() {
		var name, ddl string
		if err := rows.Scan(&name, &ddl); err != nil {
			t.Fatal(err)
		}
		tables++
		lines := strings.Split(ddl, "\n")
		if !strings.Contains(lines[0], "-- purpose: ") {
			t.Errorf("table %s: first line has no purpose comment: %q", name, lines[0])
		}
		for _, l := range lines[1:] {
			l = strings.TrimSpace(l)
			if l == "" || strings.HasPrefix(l, ")") || strings.HasPrefix(l, "PRIMARY KEY") || strings.HasPrefix(l, "FOREIGN KEY") {
				continue
			}
			if !strings.Contains(l, "-- purpose: ") {
				t.Errorf("table %s: column line has no purpose comment: %q", name, l)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if tables != 23 {
		t.Errorf("found %d tables, want 23", tables)
	}
}

func TestRefusesUnstorableValues(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "uptrust.db"))
	defer s.Close()
	ctx := context.Background()
	tooLate := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := map[string]func(tx store.Tx) error{
		"year 10000": func(tx store.Tx) error {
			return tx.PutProduct(ctx, store.Product{Name: "p", Created: tooLate})
		},
		"huge security version": func(tx store.Tx) error {
			if err := tx.PutProduct(ctx, store.Product{Name: "p"}); err != nil {
				return err
			}
			return tx.AddRelease(ctx, store.Release{Product: "p", Version: "1", SecurityVersion: 1 << 63})
		},
		"metadata version 0": func(tx store.Tx) error {
			return tx.PutMetadata(ctx, store.Metadata{Repo: "release", Role: "root", Version: 0, Body: []byte("x")})
		},
		"empty product name": func(tx store.Tx) error {
			return tx.PutProduct(ctx, store.Product{Name: ""})
		},
	}
	for name, fn := range cases {
		err := s.Update(ctx, fn)
		if err == nil || !strings.HasPrefix(err.Error(), "store/sqlite: ") {
			t.Errorf("%s: got %v, want a store/sqlite error", name, err)
		}
	}
	if err := s.AddReport(ctx, store.ReportCount{Product: "p", Count: -1}); err == nil {
		t.Error("AddReport with a negative count succeeded")
	}
}

// AddReportCapped creates no counter beyond the day's cap but still adds
// to existing ones; another day has its own room.
func TestAddReportCapped(t *testing.T) {
	ctx := t.Context()
	s := openT(t, filepath.Join(t.TempDir(), "u.db"))
	day := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	add := func(v string, d time.Time) error {
		return s.AddReportCapped(ctx, store.ReportCount{Product: "p", Version: v, Outcome: "installed", Count: 1, Day: d}, 2)
	}
	for _, v := range []string{"1", "2", "1"} {
		if err := add(v, day); err != nil {
			t.Fatalf("add %s: %v", v, err)
		}
	}
	if err := add("3", day); !errors.Is(err, store.ErrFull) {
		t.Fatalf("third counter of the day: %v, want store.ErrFull", err)
	}
	if err := add("2", day); err != nil {
		t.Fatalf("existing counter at the cap: %v", err)
	}
	if err := add("3", day.Add(24*time.Hour)); err != nil {
		t.Fatalf("next day: %v", err)
	}
	counts, err := s.ReportCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, c := range counts {
		total += int(c.Count)
	}
	if len(counts) != 3 || total != 5 {
		t.Errorf("counters %+v, want 3 rows with 5 reports", counts)
	}
}
