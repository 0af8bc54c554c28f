package postgres

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/postgres/pgtest"
)

// Two servers starting together against one empty database: both open, and
// each migration is applied exactly once. Without the migration lock the
// second CREATE TABLE or schema_migrations insert fails.
func TestConcurrentMigration(t *testing.T) {
	ctx := context.Background()
	for round := range 3 {
		dsn := pgtest.URL(t)
		const n = 4
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := Open(ctx, dsn)
				if err == nil {
					s.Close()
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: concurrent Open: %v", round, err)
		}
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		rows, _ := conn.Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
		got, err := pgx.CollectRows(rows, pgx.RowTo[int])
		conn.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []int{}
		for v := 1; v <= Known; v++ {
			want = append(want, v)
		}
		if !slices.Equal(got, want) {
			t.Errorf("round %d: schema_migrations %v, want %v once each", round, got, want)
		}
	}
}

// A database migrated by an older program is brought up to date, keeping
// its data; ReadStatus reports the versions before and after.
func TestMigrateFromOlderSchema(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.URL(t)
	old, err := open(ctx, dsn, migrations[:1], true)
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	st, err := ReadStatus(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != 1 || st.Known != Known || st.Pending() != Known-1 || len(st.Applied) != 1 {
		t.Errorf("status of an old database = %+v, want current 1 of %d", st, Known)
	}
	s := openT(t, dsn)
	defer s.Close()
	if st, err = ReadStatus(ctx, dsn); err != nil || st.Current != Known || st.Pending() != 0 || len(st.Applied) != Known {
		t.Errorf("status after Open = %+v, %v; want current %d", st, err, Known)
	}
	if _, err := s.Audit(ctx); err != nil {
		t.Errorf("Audit after migration: %v", err)
	}
}

// TestMigrateAuditChainFromV3 opens a database written by a program that
// knew schema 3, whose audit log had no chain: its entries are chained in
// the order schema 3 listed them (time, then insertion: inserting
// transaction, then command within it) as successful CLI actions, marked
// legacy, and new entries continue the chain.
func TestMigrateAuditChainFromV3(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.URL(t)
	old, err := open(ctx, dsn, migrations[:3], true)
	if err != nil {
		t.Fatalf("open with schema 3: %v", err)
	}
	base := time.Date(2025, 1, 2, 3, 4, 5, 6789, time.UTC)
	insert := `INSERT INTO audit (time, action, object, detail) VALUES ($1, $2, $3, 'd')`
	// Inserted out of time order, each in its own transaction: the chain
	// follows time, then insertion.
	for _, r := range []struct {
		d              time.Duration
		action, object string
	}{{time.Hour, "release.add", "p/1.0"}, {0, "project.init", "release"}, {time.Hour, "rollout.start", "p/1.0"}} {
		if _, err := old.pool.Exec(ctx, insert, base.Add(r.d).Format(timeLayout), r.action, r.object); err != nil {
			t.Fatal(err)
		}
	}
	// Two at the same time in one transaction: the command order decides.
	if err := pgx.BeginFunc(ctx, old.pool, func(tx pgx.Tx) error {
		for _, action := range []string{"rollout.change", "rollout.halt"} {
			if _, err := tx.Exec(ctx, insert, base.Add(time.Hour).Format(timeLayout), action, "p/1.0"); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	old.Close()

	s := openT(t, dsn)
	defer s.Close()
	st, err := ReadStatus(ctx, dsn)
	if err != nil || st.Current != Known || len(st.Applied) != Known {
		t.Errorf("status after Open = %+v, %v; want current %d", st, err, Known)
	}
	es, err := s.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action)
		if e.Actor != store.ActorCLI || e.Outcome != store.OutcomeOK || e.RequestID != "" || e.Role != "" || e.Detail != "d" {
			t.Errorf("legacy entry %+v: want actor cli, outcome ok, no role or request id, detail kept", e)
		}
		if !e.Time.Equal(base.Truncate(time.Microsecond)) && !e.Time.Equal(base.Add(time.Hour).Truncate(time.Microsecond)) {
			t.Errorf("legacy entry %+v: time not kept (to the microsecond)", e)
		}
	}
	if want := []string{"project.init", "release.add", "rollout.start", "rollout.change", "rollout.halt"}; !slices.Equal(actions, want) {
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
	if es, err = s.Audit(ctx); err != nil {
		t.Fatal(err)
	}
	v := store.VerifyAudit(c, es)
	if !v.Intact || v.LegacySeq != 5 || v.FirstSeq != 1 || v.LastSeq != 6 {
		t.Errorf("VerifyAudit after migration = %+v, want intact, legacy up to 5, seq 1 to 6", v)
	}
	tables, err := s.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == "audit_legacy" {
			t.Error("audit_legacy is left behind")
		}
		if tb.Name == "audit" && tb.Purpose == "" {
			t.Error("the new audit table has no purpose comment")
		}
	}
}

// A database at schema 3 with an empty audit log gets an empty chain at
// the genesis, with no legacy part.
func TestMigrateEmptyAuditFromV3(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.URL(t)
	old, err := open(ctx, dsn, migrations[:3], true)
	if err != nil {
		t.Fatalf("open with schema 3: %v", err)
	}
	old.Close()
	s := openT(t, dsn)
	defer s.Close()
	c, err := s.AuditChain(ctx)
	if want := (store.AuditChain{AnchorHash: store.AuditGenesis, HeadHash: store.AuditGenesis}); err != nil || c != want {
		t.Errorf("AuditChain after migrating an empty log = %+v, %v; want %+v", c, err, want)
	}
	var rows int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM audit_chain`).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("audit_chain rows = %d, %v; want the one row appends lock", rows, err)
	}
}

func TestEmptyDatabaseStatus(t *testing.T) {
	st, err := ReadStatus(context.Background(), pgtest.URL(t))
	if err != nil || st.Current != 0 || st.Pending() != Known {
		t.Errorf("status of an empty database = %+v, %v; want current 0, %d pending", st, err, Known)
	}
}

// A database written by a newer program is refused with a clear error.
func TestSchemaTooNew(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.URL(t)
	s := openT(t, dsn)
	if _, err := s.pool.Exec(ctx, `INSERT INTO schema_migrations (version, applied) VALUES ($1, 'later')`, Known+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(ctx, dsn)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer database: %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{"newer than this program", "version " + itoa(Known+1)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// A database whose schema holds someone else's tables is not taken over.
func TestNotUptrust(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.URL(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `CREATE TABLE customers (id int)`)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dsn); !errors.Is(err, ErrNotUptrust) {
		t.Errorf("Open of a foreign database: %v, want ErrNotUptrust", err)
	}
}

// Bad connection strings and unreachable servers give errors that name the
// database without its password.
func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	good := pgtest.URL(t)
	sock := strings.TrimSuffix(good[strings.Index(good, "host=")+5:], "&sslmode=disable")
	tests := []struct {
		dsn  string
		want []string
	}{
		{"postgres://alice:s3cret@/nodb?host=" + sock + "/missing-dir&connect_timeout=5",
			[]string{"store/postgres: open postgres://alice:xxxxx@/nodb", "missing-dir"}},
		{"postgres://alice:s3cret@[::1:bad/x", []string{"store/postgres: open postgres://xxxxx@[::1:bad/x", "not a valid connection string"}},
		{"host=" + sock + " dbname=absent user=uptrust password=s3cret", []string{"password=xxxxx", `database "absent" does not exist`}},
		{"postgres://uptrust:s3cret@/x?host=" + sock + "&sslmode=bogus", []string{"postgres://uptrust:xxxxx@/x", "sslmode"}},
	}
	for _, tt := range tests {
		_, err := Open(ctx, tt.dsn)
		if err == nil {
			t.Errorf("Open(%s) succeeded", tt.dsn)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%s): error shows the password: %v", tt.dsn, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Open(%s): error %q does not say %q", tt.dsn, err, w)
			}
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@h:5/db?sslmode=disable": "postgres://u:xxxxx@h:5/db?sslmode=disable",
		"postgresql://u@h/db":                    "postgresql://u@h/db",
		"postgres://u@h/db?password=pw":          "postgres://u@h/db?password=xxxxx",
		"host=h password='p w' user=u":           "host=h password=xxxxx user=u",
		"host=h PASSWORD=pw":                     "host=h PASSWORD=xxxxx",
		"postgres://u:p%zz@h/db":                 "postgres://xxxxx@h/db",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
