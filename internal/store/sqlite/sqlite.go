// Package sqlite is the embedded store.Store: one SQLite file, written through
// modernc.org/sqlite, a pure-Go SQLite, so the server builds with
// CGO_ENABLED=0 and cross-compiles.
//
// The file runs in WAL mode with synchronous=FULL: a committed Update (signed
// TUF metadata, releases, rollouts) survives power loss. Foreign keys are
// enforced: a release needs its product, a rollout needs its release.
//
// Concurrency: a Store is safe for concurrent use. All writes (Update,
// AddReport, Purge) go through a single connection whose transactions begin
// IMMEDIATE, so writers in this process queue on that connection and writers
// in other processes wait up to busy_timeout (5 s) for the file lock. Reads go
// through a separate pool of read-only connections and never wait for a
// writer: they see the last committed state.
//
// Errors name their origin ("store/sqlite: ..."). Missing objects wrap
// store.ErrNotFound, duplicates wrap store.ErrConflict, a cancelled context
// wraps the context's error; other driver errors are reported as text and are
// not part of the API.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/uptrust/uptrust/internal/store"
)

// ErrCorrupt is returned by Open when the file is not an SQLite database or
// its structure is damaged.
var ErrCorrupt = errors.New("store/sqlite: not an SQLite database, or corrupt")

// busyTimeout is how long a statement waits for another process's lock.
const busyTimeout = 5 * time.Second

// Store is a store.Store backed by one SQLite file. Create it with Open; it is
// safe for concurrent use.
type Store struct {
	reader         // reads through the read-only pool
	w      *sql.DB // exactly one connection; all writes
	r      *sql.DB // read-only connections
}

var (
	_ store.Store = (*Store)(nil)
	_ store.Tx    = (*txn)(nil)
)

// Open opens the database at path, creating it if it does not exist, and
// migrates its schema to the newest version this program knows. It fails with
// ErrSchemaTooNew when a newer program has written the file, ErrNotUptrust
// when it is someone else's SQLite database, and ErrCorrupt when it is not a
// database at all. ctx bounds the opening and migration only.
func Open(ctx context.Context, path string) (*Store, error) {
	s, err := open(ctx, path, migrations)
	if err != nil {
		return nil, fmt.Errorf("store/sqlite: open %s: %w", path, err)
	}
	return s, nil
}

// open opens path and migrates it to schema version len(steps).
func open(ctx context.Context, path string, steps []string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	ms := busyTimeout.Milliseconds()
	w, err := sql.Open("sqlite", dsn(abs,
		fmt.Sprintf("busy_timeout(%d)", ms),
		"foreign_keys(1)",
		"journal_mode(WAL)",
		"synchronous(FULL)",
	)+"&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	// One writer connection: in-process writers queue here (honouring their
	// contexts) instead of spinning on SQLITE_BUSY. Keep it open for good.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, openErr(ctx, err)
	}
	if err := migrate(ctx, w, time.Now(), steps); err != nil {
		w.Close()
		return nil, openErr(ctx, err)
	}

	r, err := sql.Open("sqlite", dsn(abs,
		fmt.Sprintf("busy_timeout(%d)", ms),
		"query_only(1)",
	))
	if err != nil {
		w.Close()
		return nil, err
	}
	// WAL lets readers run beside the writer; a few per CPU is plenty for
	// short indexed lookups.
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, openErr(ctx, err)
	}
	return &Store{reader: reader{q: r}, w: w, r: r}, nil
}

// dsn builds a file: URI for modernc.org/sqlite. Escaping the path keeps '?',
// '#' and '%' in file names from being read as URI syntax.
func dsn(absPath string, pragmas ...string) string {
	p := filepath.ToSlash(absPath)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // Windows drive letters: file:///C:/...
	}
	q := url.Values{"_pragma": pragmas}
	u := url.URL{Scheme: "file", Path: p, RawQuery: q.Encode()}
	return u.String()
}

// openErr translates an error met while opening the file.
func openErr(ctx context.Context, err error) error {
	if errors.Is(err, ErrSchemaTooNew) || errors.Is(err, ErrNotUptrust) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	switch sqliteCode(err) & 0xff {
	case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return errors.New(err.Error())
}

// Close closes the database, waiting for calls in progress; later calls fail.
// The last connection to close checkpoints the WAL into the file.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// Update runs fn in one IMMEDIATE transaction on the writer connection and
// commits when fn returns nil, bumping the generation in the same
// transaction. When fn returns an error, Update rolls back and returns that
// error unchanged; when fn panics, Update rolls back and the panic continues.
// Reads through the Tx see its writes; reads through the Store during fn see
// the state before it. fn must not call the Store's write methods (Update,
// AddReport, Purge): they wait for the connection fn holds until ctx ends.
func (s *Store) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.update(ctx, fn, true)
}

// UpdateFleet is Update without bumping the generation; see store.Store.
func (s *Store) UpdateFleet(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.update(ctx, fn, false)
}

func (s *Store) update(ctx context.Context, fn func(tx store.Tx) error, bump bool) error {
	sqlTx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return dbErr(ctx, "begin update", err)
	}
	finished := false
	defer func() {
		if !finished { // fn panicked
			_ = sqlTx.Rollback()
		}
	}()
	if err := fn(&txn{reader{q: sqlTx}}); err != nil {
		finished = true
		_ = sqlTx.Rollback()
		return err
	}
	finished = true
	if bump {
		if _, err := sqlTx.ExecContext(ctx, `UPDATE generation SET value = value + 1 WHERE id = 1`); err != nil {
			_ = sqlTx.Rollback()
			return dbErr(ctx, "bump generation", err)
		}
	}
	if err := sqlTx.Commit(); err != nil {
		return dbErr(ctx, "commit update", err)
	}
	return nil
}

// Generation returns the number of committed Updates since the database was
// created. It only grows, and survives reopening.
func (s *Store) Generation(ctx context.Context) (int64, error) {
	var g int64
	if err := s.r.QueryRowContext(ctx, `SELECT value FROM generation WHERE id = 1`).Scan(&g); err != nil {
		return 0, dbErr(ctx, "generation", err)
	}
	return g, nil
}

// AddReport adds c.Count to the counter keyed by c's strings and the UTC day
// of c.Day, creating it at zero first. It does not change the generation:
// counters are not served metadata. A negative Count is refused.
func (s *Store) AddReport(ctx context.Context, c store.ReportCount) error {
	return s.addReport(ctx, c, -1)
}

// AddReportCapped is AddReport that creates no counter on a day that has
// maxRows of them already (store.ErrFull). One statement does the check
// and the write, so concurrent writers cannot overshoot the cap.
func (s *Store) AddReportCapped(ctx context.Context, c store.ReportCount, maxRows int) error {
	if maxRows < 0 {
		return fmt.Errorf("store/sqlite: add report: negative row cap %d", maxRows)
	}
	return s.addReport(ctx, c, maxRows)
}

// addReport adds c; maxRows < 0 means no cap.
func (s *Store) addReport(ctx context.Context, c store.ReportCount, maxRows int) error {
	if c.Count < 0 {
		return fmt.Errorf("store/sqlite: add report: negative count %d", c.Count)
	}
	day, err := encodeDay(c.Day)
	if err != nil {
		return fmt.Errorf("store/sqlite: add report: %w", err)
	}
	// The SELECT yields the row when there is no cap, when the counter
	// exists (the upsert then only adds) or when the day has room.
	res, err := s.w.ExecContext(ctx, `
		INSERT INTO report_counts (day, product, version, outcome, error_class, count)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6
		WHERE ?7 < 0
			OR EXISTS (SELECT 1 FROM report_counts WHERE day = ?1 AND product = ?2 AND version = ?3 AND outcome = ?4 AND error_class = ?5)
			OR (SELECT COUNT(*) FROM report_counts WHERE day = ?1) < ?7
		ON CONFLICT (day, product, version, outcome, error_class)
		DO UPDATE SET count = count + excluded.count`,
		day, c.Product, c.Version, c.Outcome, c.ErrorClass, c.Count, maxRows)
	if err != nil {
		return dbErr(ctx, "add report", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return dbErr(ctx, "add report", err)
	}
	if n == 0 {
		return fmt.Errorf("store/sqlite: add report: %d counters on %s: %w", maxRows, day, store.ErrFull)
	}
	return nil
}

// dbErr reports a driver error from operation what. A done context is
// wrapped so callers can test for it; driver errors are flattened to text so
// they do not become part of this package's API.
func dbErr(ctx context.Context, what string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("store/sqlite: %s: %w", what, cerr)
	}
	if errors.Is(err, sql.ErrTxDone) || errors.Is(err, sql.ErrConnDone) {
		return fmt.Errorf("store/sqlite: %s: %w", what, err)
	}
	return fmt.Errorf("store/sqlite: %s: %v", what, err)
}

// sqliteCode returns the extended SQLite result code of err, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}
