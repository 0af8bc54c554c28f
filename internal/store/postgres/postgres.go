// Package postgres is the store.Store on PostgreSQL, through pgx v5, for a
// server that outgrows one machine: several replicas share one database.
//
// It keeps the contract of package store exactly as the SQLite store does
// (package storetest runs unchanged against both):
//
//   - Update runs in one READ COMMITTED transaction that first takes a
//     transaction-scoped advisory lock (updateLock), so Updates are serial
//     across every connection and replica, as SQLite's single writer is,
//     and a read-modify-write Update loses nothing without the caller's
//     function ever being run twice. Reads outside Updates never wait for
//     it: they see the last committed state (MVCC).
//   - The generation is one row bumped in every Update's transaction.
//   - AddReportCapped checks and writes under an advisory lock on the
//     counter's day, so concurrent reports cannot overshoot the cap.
//   - AddAudit and Purge of the audit log lock the one audit_chain row
//     (SELECT ... FOR UPDATE) before reading the chain's head or anchor,
//     so appends take gapless sequence numbers and a purge never writes
//     back a head an append has moved (see audit.go).
//   - Open migrates the schema in one transaction under another advisory
//     lock (migrationLock), so replicas starting together apply each
//     migration once; a database newer than the program is refused.
//
// Times are stored as fixed-width UTC text with nanoseconds, as in the
// SQLite store (see schema.go); text columns collate "C", so orderings are
// byte orderings, as in SQLite, whatever the database's locale.
//
// Errors name their origin ("store/postgres: ..."). Missing objects wrap
// store.ErrNotFound, duplicates wrap store.ErrConflict, a cancelled context
// wraps the context's error; other server errors are reported as text and
// are not part of the API. Connection strings in errors have their password
// replaced by "xxxxx" (Redact).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/uptrust/uptrust/internal/store"
)

// querier is what reader needs: the pool or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Store is a store.Store on one PostgreSQL database. Create it with Open; it
// is safe for concurrent use.
type Store struct {
	reader
	pool *pgxpool.Pool
}

var (
	_ store.Store = (*Store)(nil)
	_ store.Tx    = (*txn)(nil)
)

// IsURL reports whether s names a PostgreSQL database ("postgres://..." or
// "postgresql://...") rather than a file.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

var passwordKV = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// Redact returns the connection string dsn with its password, in the user
// information or a password parameter, replaced by "xxxxx".
func Redact(dsn string) string {
	if strings.Contains(dsn, "://") {
		if u, err := url.Parse(dsn); err == nil {
			q := u.Query()
			if q.Has("password") {
				q.Set("password", "xxxxx")
				u.RawQuery = q.Encode()
			}
			return u.Redacted()
		}
		// Unparsable: drop everything between the scheme and the host.
		scheme, rest, _ := strings.Cut(dsn, "://")
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			rest = "xxxxx" + rest[at:]
		}
		return scheme + "://" + rest
	}
	return passwordKV.ReplaceAllString(dsn, "${1}xxxxx")
}

// Open connects to the database dsn (a postgres:// URL or a key=value
// connection string, as libpq reads them; PGPASSWORD and ~/.pgpass are
// honoured) and migrates its schema to the newest version this program
// knows. It fails with ErrSchemaTooNew when a newer program has written the
// database, ErrNotUptrust when its schema holds someone else's tables, and a
// connection error naming the server when it cannot reach it. ctx bounds the
// connection and migration only.
func Open(ctx context.Context, dsn string) (*Store, error) {
	s, err := open(ctx, dsn, migrations, true)
	if err != nil {
		return nil, fmt.Errorf("store/postgres: open %s: %w", Redact(dsn), err)
	}
	return s, nil
}

// open connects to dsn and, when migrateIt, migrates it to version
// len(steps).
func open(ctx context.Context, dsn string, steps []string, migrateIt bool) (*Store, error) {
	pool, err := connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if migrateIt {
		if err := migrate(ctx, pool, time.Now(), steps); err != nil {
			pool.Close()
			return nil, openErr(ctx, err)
		}
	}
	return &Store{reader: reader{q: pool}, pool: pool}, nil
}

// connect opens a pool on dsn and checks that the server answers.
func connect(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx quotes the string it could not parse; say it without it.
		var pe *pgconn.ParseConfigError
		if errors.As(err, &pe) && pe.Unwrap() != nil {
			return nil, fmt.Errorf("not a valid connection string: %v", pe.Unwrap())
		}
		return nil, errors.New("not a valid connection string")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, openErr(ctx, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, openErr(ctx, err)
	}
	return pool, nil
}

// openErr translates an error met while opening the database.
func openErr(ctx context.Context, err error) error {
	if errors.Is(err, ErrSchemaTooNew) || errors.Is(err, ErrNotUptrust) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return errors.New(err.Error())
}

// ReadStatus connects to dsn and returns its schema status without changing
// anything.
func ReadStatus(ctx context.Context, dsn string) (Status, error) {
	pool, err := connect(ctx, dsn)
	if err != nil {
		return Status{}, fmt.Errorf("store/postgres: open %s: %w", Redact(dsn), err)
	}
	defer pool.Close()
	st, err := readStatus(ctx, pool)
	if err != nil {
		return st, fmt.Errorf("store/postgres: schema status of %s: %w", Redact(dsn), openErr(ctx, err))
	}
	return st, nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Update runs fn in one transaction and commits when fn returns nil, bumping
// the generation in the same transaction. The transaction first takes the
// update lock, so Updates anywhere on the database run one at a time. When
// fn returns an error, Update rolls back and returns that error unchanged;
// when fn panics, Update rolls back and the panic continues. Reads through
// the Tx see its writes; reads through the Store during fn see the state
// before it.
func (s *Store) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.update(ctx, fn, true)
}

// UpdateFleet is Update without bumping the generation; see store.Store.
func (s *Store) UpdateFleet(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.update(ctx, fn, false)
}

func (s *Store) update(ctx context.Context, fn func(tx store.Tx) error, bump bool) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return dbErr(ctx, "begin update", err)
	}
	finished := false
	defer func() {
		if !finished { // fn panicked
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, updateLock); err != nil {
		finished = true
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return dbErr(ctx, "take the update lock", err)
	}
	if err := fn(&txn{reader{q: tx}}); err != nil {
		finished = true
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	finished = true
	if bump {
		if _, err := tx.Exec(ctx, `UPDATE generation SET value = value + 1 WHERE id = 1`); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return dbErr(ctx, "bump generation", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return dbErr(ctx, "commit update", err)
	}
	return nil
}

// Generation returns the number of committed Updates since the database was
// created. It only grows.
func (s *Store) Generation(ctx context.Context) (int64, error) {
	var g int64
	if err := s.pool.QueryRow(ctx, `SELECT value FROM generation WHERE id = 1`).Scan(&g); err != nil {
		return 0, dbErr(ctx, "generation", err)
	}
	return g, nil
}

// AddReport adds c.Count to the counter keyed by c's strings and the UTC day
// of c.Day, creating it at zero first. It does not change the generation. A
// negative Count is refused.
func (s *Store) AddReport(ctx context.Context, c store.ReportCount) error {
	return s.addReport(ctx, c, -1)
}

// AddReportCapped is AddReport that creates no counter on a day that has
// maxRows of them already (store.ErrFull). The check and the write run in
// one transaction holding an advisory lock on the day, so concurrent
// writers, in this process or another, cannot overshoot the cap.
func (s *Store) AddReportCapped(ctx context.Context, c store.ReportCount, maxRows int) error {
	if maxRows < 0 {
		return fmt.Errorf("store/postgres: add report: negative row cap %d", maxRows)
	}
	return s.addReport(ctx, c, maxRows)
}

// reportDayLock is the first key of the two-key advisory lock on a day's
// report counters; the second is hashtext of the day.
const reportDayLock int32 = 0x75707472

// addReport adds c; maxRows < 0 means no cap.
func (s *Store) addReport(ctx context.Context, c store.ReportCount, maxRows int) error {
	if c.Count < 0 {
		return fmt.Errorf("store/postgres: add report: negative count %d", c.Count)
	}
	day, err := encodeDay(c.Day)
	if err != nil {
		return fmt.Errorf("store/postgres: add report: %w", err)
	}
	const upsert = `
		INSERT INTO report_counts (day, product, version, outcome, error_class, count)
		SELECT $1, $2, $3, $4, $5, $6
		WHERE $7 < 0
			OR EXISTS (SELECT 1 FROM report_counts WHERE day = $1 AND product = $2 AND version = $3 AND outcome = $4 AND error_class = $5)
			OR (SELECT count(*) FROM report_counts WHERE day = $1) < $7
		ON CONFLICT (day, product, version, outcome, error_class)
		DO UPDATE SET count = report_counts.count + excluded.count`
	args := []any{day, c.Product, c.Version, c.Outcome, c.ErrorClass, c.Count, maxRows}
	var n int64
	if maxRows < 0 {
		tag, err := s.pool.Exec(ctx, upsert, args...)
		if err != nil {
			return dbErr(ctx, "add report", err)
		}
		n = tag.RowsAffected()
	} else {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, reportDayLock, day); err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, upsert, args...)
			n = tag.RowsAffected()
			return err
		})
		if err != nil {
			return dbErr(ctx, "add report", err)
		}
	}
	if n == 0 {
		return fmt.Errorf("store/postgres: add report: %d counters on %s: %w", maxRows, day, store.ErrFull)
	}
	return nil
}

// dbErr reports a server error from operation what. A done context is
// wrapped so callers can test for it; other errors are flattened to text so
// they do not become part of this package's API.
func dbErr(ctx context.Context, what string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("store/postgres: %s: %w", what, cerr)
	}
	if errors.Is(err, pgx.ErrTxClosed) {
		return fmt.Errorf("store/postgres: %s: %w", what, err)
	}
	return fmt.Errorf("store/postgres: %s: %v", what, err)
}

// SQLSTATE codes this package translates.
const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)

// pgCode returns the SQLSTATE of err, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
