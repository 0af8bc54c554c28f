package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqldevice"
	"github.com/uptrust/uptrust/internal/store/sqlrow"
)

// The device tables of managed mode (schema 7) are implemented once in
// internal/store/sqldevice, and the SQL both stores share in
// internal/store/sqlshared; db adapts a querier to them.

type db struct{ q querier }

var placeholder = regexp.MustCompile(`\$(\d+)`)

// rewritten caches rewrite's results. The shared queries are a fixed set,
// but a few carry a literal (LIMIT n), so the cache stops growing at about
// maxRewritten entries; later queries are rewritten each time.
var (
	rewritten  sync.Map // string -> string
	nRewritten atomic.Int64
)

const maxRewritten = 1024

// rewrite turns PostgreSQL's $n into SQLite's ?n, which binds the n-th
// argument the same way. A query without $ is returned as it is.
func rewrite(query string) string {
	if !strings.Contains(query, "$") {
		return query
	}
	if r, ok := rewritten.Load(query); ok {
		return r.(string)
	}
	r := placeholder.ReplaceAllString(query, "?$1")
	if nRewritten.Load() < maxRewritten {
		if _, loaded := rewritten.LoadOrStore(query, r); !loaded {
			nRewritten.Add(1)
		}
	}
	return r
}

func (db) Name() string { return "store/sqlite" }

func (d db) QueryRow(ctx context.Context, query string, args ...any) sqlrow.Scanner {
	return d.q.QueryRowContext(ctx, rewrite(query), args...)
}

type rows struct{ *sql.Rows }

func (r rows) Close() { _ = r.Rows.Close() }

func (d db) Query(ctx context.Context, query string, args ...any) (sqldevice.Rows, error) {
	r, err := d.q.QueryContext(ctx, rewrite(query), args...)
	if err != nil {
		return nil, err
	}
	return rows{r}, nil
}

func (d db) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := d.q.ExecContext(ctx, rewrite(query), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (db) NoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

func (db) Unique(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || c == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

func (db) ForeignKey(err error) bool { return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY }

func (db) InsertionOrder() string { return "rowid" }

func (db) Err(ctx context.Context, what string, err error) error { return dbErr(ctx, what, err) }

func (r reader) DevicePolicy(ctx context.Context, product string) (store.DevicePolicy, error) {
	return sqldevice.DevicePolicy(ctx, db{r.q}, product)
}
func (r reader) Device(ctx context.Context, id string) (store.Device, error) {
	return sqldevice.Device(ctx, db{r.q}, id)
}
func (r reader) DeviceByKey(ctx context.Context, key string) (store.Device, error) {
	return sqldevice.DeviceByKey(ctx, db{r.q}, key)
}
func (r reader) Devices(ctx context.Context, f store.DeviceFilter) ([]store.Device, error) {
	return sqldevice.Devices(ctx, db{r.q}, f)
}
func (r reader) EnrollmentToken(ctx context.Context, id string) (store.EnrollmentToken, error) {
	return sqldevice.EnrollmentToken(ctx, db{r.q}, id)
}
func (r reader) EnrollmentTokens(ctx context.Context, product string) ([]store.EnrollmentToken, error) {
	return sqldevice.EnrollmentTokens(ctx, db{r.q}, product)
}
func (r reader) PreauthorizedKey(ctx context.Context, key string) (store.PreauthorizedKey, error) {
	return sqldevice.PreauthorizedKey(ctx, db{r.q}, key)
}
func (r reader) PreauthorizedKeys(ctx context.Context, product string) ([]store.PreauthorizedKey, error) {
	return sqldevice.PreauthorizedKeys(ctx, db{r.q}, product)
}
func (r reader) DeviceEvents(ctx context.Context, device string) ([]store.DeviceEvent, error) {
	return sqldevice.DeviceEvents(ctx, db{r.q}, device)
}

func (t *txn) PutDevicePolicy(ctx context.Context, p store.DevicePolicy) error {
	return sqldevice.PutDevicePolicy(ctx, db{t.q}, p)
}
func (t *txn) AddDevice(ctx context.Context, d store.Device) error {
	return sqldevice.AddDevice(ctx, db{t.q}, d)
}
func (t *txn) PutDevice(ctx context.Context, d store.Device) error {
	return sqldevice.PutDevice(ctx, db{t.q}, d)
}
func (t *txn) DeleteDevice(ctx context.Context, id string) error {
	return sqldevice.DeleteDevice(ctx, db{t.q}, id)
}
func (t *txn) AddEnrollmentToken(ctx context.Context, e store.EnrollmentToken) error {
	return sqldevice.AddEnrollmentToken(ctx, db{t.q}, e)
}
func (t *txn) PutEnrollmentToken(ctx context.Context, e store.EnrollmentToken) error {
	return sqldevice.PutEnrollmentToken(ctx, db{t.q}, e)
}
func (t *txn) AddPreauthorizedKey(ctx context.Context, k store.PreauthorizedKey) error {
	return sqldevice.AddPreauthorizedKey(ctx, db{t.q}, k)
}
func (t *txn) DeletePreauthorizedKey(ctx context.Context, key string) error {
	return sqldevice.DeletePreauthorizedKey(ctx, db{t.q}, key)
}
func (t *txn) AddDeviceEvent(ctx context.Context, e store.DeviceEvent) error {
	return sqldevice.AddDeviceEvent(ctx, db{t.q}, e)
}

// UseDeviceNonce records a device nonce on the writer connection; see
// store.Store.
func (s *Store) UseDeviceNonce(ctx context.Context, n store.DeviceNonce, now time.Time) error {
	return sqldevice.UseNonce(ctx, db{s.w}, n, now)
}

func (r reader) DeviceCount(ctx context.Context, product, state string) (int64, error) {
	return sqldevice.DeviceCount(ctx, db{r.q}, product, state)
}
func (r reader) DeviceEventsSince(ctx context.Context, product string, since time.Time) ([]store.DeviceEvent, error) {
	return sqldevice.DeviceEventsSince(ctx, db{r.q}, product, since)
}
func (r reader) LatestDeviceEvents(ctx context.Context, f store.OutcomeFilter) ([]store.DeviceEvent, error) {
	return sqldevice.LatestDeviceEvents(ctx, db{r.q}, f)
}
func (r reader) ManagedRollout(ctx context.Context, id string) (store.ManagedRollout, error) {
	return sqldevice.ManagedRollout(ctx, db{r.q}, id)
}
func (r reader) ManagedRollouts(ctx context.Context, product string) ([]store.ManagedRollout, error) {
	return sqldevice.ManagedRollouts(ctx, db{r.q}, product)
}
func (r reader) DeviceLabels(ctx context.Context, f store.LabelFilter) ([]store.DeviceLabel, error) {
	return sqldevice.DeviceLabels(ctx, db{r.q}, f)
}
func (t *txn) AddManagedRollout(ctx context.Context, r store.ManagedRollout) error {
	return sqldevice.AddManagedRollout(ctx, db{t.q}, r)
}
func (t *txn) PutManagedRolloutState(ctx context.Context, id string, state []byte, updated time.Time) error {
	return sqldevice.PutManagedRolloutState(ctx, db{t.q}, id, state, updated)
}
func (t *txn) AddDeviceLabel(ctx context.Context, l store.DeviceLabel) error {
	return sqldevice.AddDeviceLabel(ctx, db{t.q}, l)
}
func (t *txn) DeleteDeviceLabel(ctx context.Context, device, kind, name string) error {
	return sqldevice.DeleteDeviceLabel(ctx, db{t.q}, device, kind, name)
}
