package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqldevice"
	"github.com/uptrust/uptrust/internal/store/sqlrow"
)

// The device tables of managed mode (schema 7) are implemented once in
// internal/store/sqldevice, and the SQL both stores share in
// internal/store/sqlshared; db adapts a querier to them.

type db struct {
	q querier
	// tx is set in a transaction: writes then run in a savepoint.
	tx *txn
}

func (db) Name() string { return "store/postgres" }

func (d db) QueryRow(ctx context.Context, query string, args ...any) sqlrow.Scanner {
	return d.q.QueryRow(ctx, query, args...)
}

type rows struct{ pgx.Rows }

func (d db) Query(ctx context.Context, query string, args ...any) (sqldevice.Rows, error) {
	r, err := d.q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return rows{r}, nil
}

func (d db) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	if d.tx != nil {
		tag, err := d.tx.exec(ctx, query, args...)
		return tag.RowsAffected(), err
	}
	tag, err := d.q.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

func (db) NoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

func (db) Unique(err error) bool { return pgCode(err) == uniqueViolation }

func (db) ForeignKey(err error) bool { return pgCode(err) == foreignKeyViolation }

func (db) InsertionOrder() string { return "id" }

func (db) Err(ctx context.Context, what string, err error) error { return dbErr(ctx, what, err) }

func (r reader) DevicePolicy(ctx context.Context, product string) (store.DevicePolicy, error) {
	return sqldevice.DevicePolicy(ctx, db{q: r.q}, product)
}
func (r reader) Device(ctx context.Context, id string) (store.Device, error) {
	return sqldevice.Device(ctx, db{q: r.q}, id)
}
func (r reader) DeviceByKey(ctx context.Context, key string) (store.Device, error) {
	return sqldevice.DeviceByKey(ctx, db{q: r.q}, key)
}
func (r reader) Devices(ctx context.Context, f store.DeviceFilter) ([]store.Device, error) {
	return sqldevice.Devices(ctx, db{q: r.q}, f)
}
func (r reader) EnrollmentToken(ctx context.Context, id string) (store.EnrollmentToken, error) {
	return sqldevice.EnrollmentToken(ctx, db{q: r.q}, id)
}
func (r reader) EnrollmentTokens(ctx context.Context, product string) ([]store.EnrollmentToken, error) {
	return sqldevice.EnrollmentTokens(ctx, db{q: r.q}, product)
}
func (r reader) PreauthorizedKey(ctx context.Context, key string) (store.PreauthorizedKey, error) {
	return sqldevice.PreauthorizedKey(ctx, db{q: r.q}, key)
}
func (r reader) PreauthorizedKeys(ctx context.Context, product string) ([]store.PreauthorizedKey, error) {
	return sqldevice.PreauthorizedKeys(ctx, db{q: r.q}, product)
}
func (r reader) DeviceEvents(ctx context.Context, device string) ([]store.DeviceEvent, error) {
	return sqldevice.DeviceEvents(ctx, db{q: r.q}, device)
}

func (t *txn) PutDevicePolicy(ctx context.Context, p store.DevicePolicy) error {
	return sqldevice.PutDevicePolicy(ctx, db{q: t.q, tx: t}, p)
}
func (t *txn) AddDevice(ctx context.Context, d store.Device) error {
	return sqldevice.AddDevice(ctx, db{q: t.q, tx: t}, d)
}
func (t *txn) PutDevice(ctx context.Context, d store.Device) error {
	return sqldevice.PutDevice(ctx, db{q: t.q, tx: t}, d)
}
func (t *txn) DeleteDevice(ctx context.Context, id string) error {
	return sqldevice.DeleteDevice(ctx, db{q: t.q, tx: t}, id)
}
func (t *txn) AddEnrollmentToken(ctx context.Context, e store.EnrollmentToken) error {
	return sqldevice.AddEnrollmentToken(ctx, db{q: t.q, tx: t}, e)
}
func (t *txn) PutEnrollmentToken(ctx context.Context, e store.EnrollmentToken) error {
	return sqldevice.PutEnrollmentToken(ctx, db{q: t.q, tx: t}, e)
}
func (t *txn) AddPreauthorizedKey(ctx context.Context, k store.PreauthorizedKey) error {
	return sqldevice.AddPreauthorizedKey(ctx, db{q: t.q, tx: t}, k)
}
func (t *txn) DeletePreauthorizedKey(ctx context.Context, key string) error {
	return sqldevice.DeletePreauthorizedKey(ctx, db{q: t.q, tx: t}, key)
}
func (t *txn) AddDeviceEvent(ctx context.Context, e store.DeviceEvent) error {
	return sqldevice.AddDeviceEvent(ctx, db{q: t.q, tx: t}, e)
}

// UseDeviceNonce records a device nonce in one statement on the pool; see
// store.Store.
func (s *Store) UseDeviceNonce(ctx context.Context, n store.DeviceNonce, now time.Time) error {
	return sqldevice.UseNonce(ctx, db{q: s.pool}, n, now)
}

func (r reader) DeviceCount(ctx context.Context, product, state string) (int64, error) {
	return sqldevice.DeviceCount(ctx, db{q: r.q}, product, state)
}
func (r reader) DeviceEventsSince(ctx context.Context, product string, since time.Time) ([]store.DeviceEvent, error) {
	return sqldevice.DeviceEventsSince(ctx, db{q: r.q}, product, since)
}
func (r reader) LatestDeviceEvents(ctx context.Context, f store.OutcomeFilter) ([]store.DeviceEvent, error) {
	return sqldevice.LatestDeviceEvents(ctx, db{q: r.q}, f)
}
func (r reader) ManagedRollout(ctx context.Context, id string) (store.ManagedRollout, error) {
	return sqldevice.ManagedRollout(ctx, db{q: r.q}, id)
}
func (r reader) ManagedRollouts(ctx context.Context, product string) ([]store.ManagedRollout, error) {
	return sqldevice.ManagedRollouts(ctx, db{q: r.q}, product)
}
func (r reader) DeviceLabels(ctx context.Context, f store.LabelFilter) ([]store.DeviceLabel, error) {
	return sqldevice.DeviceLabels(ctx, db{q: r.q}, f)
}
func (t *txn) AddManagedRollout(ctx context.Context, r store.ManagedRollout) error {
	return sqldevice.AddManagedRollout(ctx, db{q: t.q, tx: t}, r)
}
func (t *txn) PutManagedRolloutState(ctx context.Context, id string, state []byte, updated time.Time) error {
	return sqldevice.PutManagedRolloutState(ctx, db{q: t.q, tx: t}, id, state, updated)
}
func (t *txn) AddDeviceLabel(ctx context.Context, l store.DeviceLabel) error {
	return sqldevice.AddDeviceLabel(ctx, db{q: t.q, tx: t}, l)
}
func (t *txn) DeleteDeviceLabel(ctx context.Context, device, kind, name string) error {
	return sqldevice.DeleteDeviceLabel(ctx, db{q: t.q, tx: t}, device, kind, name)
}
