package storetest

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/uptrust/uptrust/internal/store"
)

// Dump returns every row of every table of s's live schema (the tables
// from Describe, the rows read from the database itself), as text with
// the rows of each table sorted, for tests that check a refused request
// changed nothing. The database is the SQLite file sqlitePath (read
// through database/sql's "sqlite" driver, which the caller's binary
// registers by importing internal/store/sqlite) or, when pgURL is set,
// that PostgreSQL database. Tables named in skip are left out.
func Dump(t testing.TB, s store.Store, sqlitePath, pgURL string, skip ...string) string {
	t.Helper()
	ctx := t.Context()
	tables, err := s.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var query func(table string, cols []store.Column) []string
	if pgURL != "" {
		conn, err := pgx.Connect(ctx, pgURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		query = func(table string, _ []store.Column) []string {
			rows, err := conn.Query(ctx, fmt.Sprintf(`SELECT t::text FROM %q t`, table))
			if err != nil {
				t.Fatalf("dump %s: %v", table, err)
			}
			defer rows.Close()
			var out []string
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				out = append(out, s)
			}
			return out
		}
	} else {
		db, err := sql.Open("sqlite", sqlitePath)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		query = func(table string, cols []store.Column) []string {
			var cs []string
			for _, c := range cols {
				cs = append(cs, fmt.Sprintf("coalesce(CAST(%q AS TEXT), '')", c.Name))
			}
			rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT %s FROM %q", strings.Join(cs, " || '|' || "), table))
			if err != nil {
				t.Fatalf("dump %s: %v", table, err)
			}
			defer rows.Close()
			var out []string
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				out = append(out, s)
			}
			return out
		}
	}
	var b strings.Builder
	for _, tb := range tables {
		if slices.Contains(skip, tb.Name) {
			continue
		}
		lines := query(tb.Name, tb.Columns)
		slices.Sort(lines)
		fmt.Fprintf(&b, "%s: %d rows\n%s\n", tb.Name, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}
