// Package sqldevice implements the device tables of managed mode (schema
// 7; the shared nonces of schema 8; managed rollouts, groups and tags of
// schema 10 in waves.go) once for both SQL stores (internal/store/sqlite and
// internal/store/postgres). Queries are written with PostgreSQL's $n
// placeholders; the SQLite adapter rewrites them to SQLite's ?n, which
// binds the same way. Each store passes a DB adapter over its reader or
// transaction; the schema itself stays in each store's migrations.
package sqldevice

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqlrow"
)

// Rows is a result set of database/sql or pgx.
type Rows = sqlrow.Rows

// DB is what a store gives this package: one querier (a pool for reads, a
// transaction for Tx methods) and its error classification.
type DB interface {
	// Name prefixes errors, such as "store/sqlite".
	Name() string
	QueryRow(ctx context.Context, query string, args ...any) sqlrow.Scanner
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// Exec runs a write and returns the rows it affected. In a PostgreSQL
	// transaction it runs inside a savepoint, so a refused write leaves
	// the transaction usable.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// NoRows reports a QueryRow that found nothing; Unique a unique or
	// primary key violation.
	NoRows(err error) bool
	Unique(err error) bool
	// Err wraps a database error as the store does (context errors kept).
	Err(ctx context.Context, what string, err error) error
}

const (
	policyCols = `product, mode, inventory, updated`
	deviceCols = `id, product, public_key, state, inventory, enrolled, updated`
	tokenCols  = `id, product, secret_hash, uses, auto_accept, created, expires, revoked`
	keyCols    = `public_key, product, created`
	eventCols  = `device, seq, time, kind, version, progress, error_class, message, reason`
)

func one[T any](ctx context.Context, db DB, what string, scan func(sqlrow.Scanner) (T, error), query string, args ...any) (T, error) {
	return sqlrow.One(ctx, db, what, scan, query, args...)
}

func all[T any](ctx context.Context, db DB, what string, scan func(sqlrow.Scanner) (T, error), query string, args ...any) ([]T, error) {
	return sqlrow.All(ctx, db, what, scan, query, args...)
}

func scanPolicy(s sqlrow.Scanner) (store.DevicePolicy, error) {
	var p store.DevicePolicy
	var inv, updated string
	if err := s.Scan(&p.Product, &p.Mode, &inv, &updated); err != nil {
		return p, err
	}
	if err := json.Unmarshal([]byte(inv), &p.Inventory); err != nil {
		return p, fmt.Errorf("device policy %s: inventory: %v", p.Product, err)
	}
	var err error
	p.Updated, err = sqlrow.DecodeTime(updated)
	return p, err
}

func scanDevice(s sqlrow.Scanner) (store.Device, error) {
	var d store.Device
	var inv, enrolled, updated string
	if err := s.Scan(&d.ID, &d.Product, &d.PublicKey, &d.State, &inv, &enrolled, &updated); err != nil {
		return d, err
	}
	if err := json.Unmarshal([]byte(inv), &d.Inventory); err != nil {
		return d, fmt.Errorf("device %s: inventory: %v", d.ID, err)
	}
	var err error
	if d.Enrolled, err = sqlrow.DecodeTime(enrolled); err != nil {
		return d, err
	}
	d.Updated, err = sqlrow.DecodeTime(updated)
	return d, err
}

func scanToken(s sqlrow.Scanner) (store.EnrollmentToken, error) {
	var e store.EnrollmentToken
	var uses, auto int64
	var created, expires, revoked string
	if err := s.Scan(&e.ID, &e.Product, &e.SecretHash, &uses, &auto, &created, &expires, &revoked); err != nil {
		return e, err
	}
	e.Uses = int(uses)
	e.AutoAccept = auto == 1
	var err error
	if e.Created, err = sqlrow.DecodeTime(created); err != nil {
		return e, err
	}
	if e.Expires, err = sqlrow.DecodeTime(expires); err != nil {
		return e, err
	}
	if revoked != "" {
		e.Revoked, err = sqlrow.DecodeTime(revoked)
	}
	return e, err
}

func scanKey(s sqlrow.Scanner) (store.PreauthorizedKey, error) {
	var k store.PreauthorizedKey
	var created string
	if err := s.Scan(&k.PublicKey, &k.Product, &created); err != nil {
		return k, err
	}
	var err error
	k.Created, err = sqlrow.DecodeTime(created)
	return k, err
}

func scanEvent(s sqlrow.Scanner) (store.DeviceEvent, error) {
	var e store.DeviceEvent
	var progress int64
	var at string
	if err := s.Scan(&e.Device, &e.Seq, &at, &e.Kind, &e.Version, &progress, &e.ErrorClass, &e.Message, &e.Reason); err != nil {
		return e, err
	}
	e.Progress = int(progress)
	var err error
	e.Time, err = sqlrow.DecodeTime(at)
	return e, err
}

// DevicePolicy reads a product's policy; see store.Reader.
func DevicePolicy(ctx context.Context, db DB, product string) (store.DevicePolicy, error) {
	return one(ctx, db, "device policy "+product, scanPolicy,
		`SELECT `+policyCols+` FROM device_policies WHERE product = $1`, product)
}

// Device reads a device; see store.Reader.
func Device(ctx context.Context, db DB, id string) (store.Device, error) {
	return one(ctx, db, "device "+id, scanDevice, `SELECT `+deviceCols+` FROM devices WHERE id = $1`, id)
}

// DeviceByKey reads the device holding a key; see store.Reader.
func DeviceByKey(ctx context.Context, db DB, key string) (store.Device, error) {
	return one(ctx, db, "device by key", scanDevice, `SELECT `+deviceCols+` FROM devices WHERE public_key = $1`, key)
}

// Devices lists devices; see store.Reader.
func Devices(ctx context.Context, db DB, f store.DeviceFilter) ([]store.Device, error) {
	var c conds
	add := c.add
	if f.Product != "" {
		add("product = $%d", f.Product)
	}
	if f.State != "" {
		add("state = $%d", f.State)
	}
	if f.AfterID != "" {
		add("id > $%d", f.AfterID)
	}
	if !f.UpdatedSince.IsZero() {
		// Stored times are UTC in one fixed-width layout, so they sort
		// as text.
		since, err := sqlrow.EncodeTime(f.UpdatedSince)
		if err != nil {
			return nil, fmt.Errorf("%s: devices: updated since: %w", db.Name(), err)
		}
		add("updated >= $%d", since)
	}
	q := `SELECT ` + deviceCols + ` FROM devices`
	q += c.where()
	q += ` ORDER BY id`
	if f.Limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, f.Limit)
	}
	return all(ctx, db, "devices", scanDevice, q, c.args...)
}

// DeviceCount counts devices; see store.Reader.
func DeviceCount(ctx context.Context, db DB, product, state string) (int64, error) {
	q, args := `SELECT count(*) FROM devices WHERE product = $1`, []any{product}
	if state != "" {
		q, args = q+` AND state = $2`, append(args, state) // devices_by_product (product, state, id) then
	}
	var n int64
	err := db.QueryRow(ctx, q, args...).Scan(&n)
	if err != nil {
		return 0, db.Err(ctx, "count devices of "+product, err)
	}
	return n, nil
}

// EnrollmentToken reads a token; see store.Reader.
func EnrollmentToken(ctx context.Context, db DB, id string) (store.EnrollmentToken, error) {
	return one(ctx, db, "enrollment token "+id, scanToken, `SELECT `+tokenCols+` FROM enrollment_tokens WHERE id = $1`, id)
}

// EnrollmentTokens lists tokens; see store.Reader.
func EnrollmentTokens(ctx context.Context, db DB, product string) ([]store.EnrollmentToken, error) {
	return all(ctx, db, "enrollment tokens", scanToken, `SELECT `+tokenCols+` FROM enrollment_tokens
		WHERE $1 = '' OR product = $1 ORDER BY created, id`, product)
}

// PreauthorizedKey reads a pre-authorisation; see store.Reader.
func PreauthorizedKey(ctx context.Context, db DB, key string) (store.PreauthorizedKey, error) {
	return one(ctx, db, "preauthorized key", scanKey, `SELECT `+keyCols+` FROM preauthorized_keys WHERE public_key = $1`, key)
}

// PreauthorizedKeys lists pre-authorisations; see store.Reader.
func PreauthorizedKeys(ctx context.Context, db DB, product string) ([]store.PreauthorizedKey, error) {
	return all(ctx, db, "preauthorized keys", scanKey, `SELECT `+keyCols+` FROM preauthorized_keys
		WHERE $1 = '' OR product = $1 ORDER BY created, public_key`, product)
}

// DeviceEvents lists a device's events; see store.Reader.
func DeviceEvents(ctx context.Context, db DB, device string) ([]store.DeviceEvent, error) {
	return all(ctx, db, "device events "+device, scanEvent, `SELECT `+eventCols+` FROM device_events
		WHERE device = $1 ORDER BY seq`, device)
}

// productExists refuses an unknown product with ErrNotFound.
func productExists(ctx context.Context, db DB, what, product string) error {
	var n int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM products WHERE name = $1`, product).Scan(&n); err != nil {
		return db.Err(ctx, what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %s: product %q: %w", db.Name(), what, product, store.ErrNotFound)
	}
	return nil
}

func encodeTimes(ts ...time.Time) ([]string, error) {
	out := make([]string, len(ts))
	for i, t := range ts {
		s, err := sqlrow.EncodeTime(t)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// encodeOptional encodes a time that may be zero ("" when zero).
func encodeOptional(t time.Time) (string, error) {
	if t.IsZero() {
		return "", nil
	}
	return sqlrow.EncodeTime(t)
}

// PutDevicePolicy writes a policy; see store.Tx.
func PutDevicePolicy(ctx context.Context, db DB, p store.DevicePolicy) error {
	what := "put device policy " + p.Product
	if p.Mode != store.ModeAnonymous && p.Mode != store.ModeManaged {
		return fmt.Errorf("%s: %s: unknown mode %q", db.Name(), what, p.Mode)
	}
	if err := productExists(ctx, db, what, p.Product); err != nil {
		return err
	}
	inv := slices.Clone(p.Inventory)
	if inv == nil {
		inv = []string{}
	}
	slices.Sort(inv)
	b, _ := json.Marshal(inv)
	ts, err := encodeTimes(p.Updated)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", db.Name(), what, err)
	}
	if _, err := db.Exec(ctx, `DELETE FROM device_policies WHERE product = $1`, p.Product); err != nil {
		return db.Err(ctx, what, err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO device_policies (`+policyCols+`) VALUES ($1, $2, $3, $4)`,
		p.Product, p.Mode, string(b), ts[0]); err != nil {
		return db.Err(ctx, what, err)
	}
	return nil
}

func checkState(state string) bool {
	switch state {
	case store.DevicePending, store.DeviceAccepted, store.DeviceRejected, store.DeviceDecommissioned:
		return true
	}
	return false
}

func inventoryJSON(inv map[string]string) string {
	if inv == nil {
		inv = map[string]string{}
	}
	b, _ := json.Marshal(inv) // map keys sorted
	return string(b)
}

// AddDevice stores a device; see store.Tx.
func AddDevice(ctx context.Context, db DB, d store.Device) error {
	what := "add device " + d.ID
	switch {
	case d.ID == "" || d.PublicKey == "":
		return fmt.Errorf("%s: %s: id and public key must not be empty", db.Name(), what)
	case !checkState(d.State):
		return fmt.Errorf("%s: %s: unknown state %q", db.Name(), what, d.State)
	}
	if err := productExists(ctx, db, what, d.Product); err != nil {
		return err
	}
	ts, err := encodeTimes(d.Enrolled, d.Updated)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", db.Name(), what, err)
	}
	_, err = db.Exec(ctx, `INSERT INTO devices (`+deviceCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		d.ID, d.Product, d.PublicKey, d.State, inventoryJSON(d.Inventory), ts[0], ts[1])
	if err != nil && db.Unique(err) {
		return fmt.Errorf("%s: %s: a device with this id or public key exists: %w", db.Name(), what, store.ErrConflict)
	}
	if err != nil {
		return db.Err(ctx, what, err)
	}
	return nil
}

// PutDevice updates a device; see store.Tx.
func PutDevice(ctx context.Context, db DB, d store.Device) error {
	what := "put device " + d.ID
	if !checkState(d.State) {
		return fmt.Errorf("%s: %s: unknown state %q", db.Name(), what, d.State)
	}
	ts, err := encodeTimes(d.Updated)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", db.Name(), what, err)
	}
	n, err := db.Exec(ctx, `UPDATE devices SET state = $1, inventory = $2, updated = $3 WHERE id = $4`,
		d.State, inventoryJSON(d.Inventory), ts[0], d.ID)
	if err != nil {
		return db.Err(ctx, what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %s: %w", db.Name(), what, store.ErrNotFound)
	}
	return nil
}

// DeleteDevice removes a device and everything naming it; see store.Tx.
func DeleteDevice(ctx context.Context, db DB, id string) error {
	what := "delete device " + id
	d, err := Device(ctx, db, id)
	if err != nil {
		return err
	}
	for _, q := range []struct {
		sql string
		arg string
	}{
		{`DELETE FROM device_events WHERE device = $1`, id},
		{`DELETE FROM device_labels WHERE device = $1`, id},
		{`DELETE FROM preauthorized_keys WHERE public_key = $1`, d.PublicKey},
		{`DELETE FROM device_nonces WHERE keyid = $1`, KeyID(d.PublicKey)},
		{`DELETE FROM devices WHERE id = $1`, id},
	} {
		if _, err := db.Exec(ctx, q.sql, q.arg); err != nil {
			return db.Err(ctx, what, err)
		}
	}
	return nil
}

// AddEnrollmentToken stores a token; see store.Tx.
func AddEnrollmentToken(ctx context.Context, db DB, e store.EnrollmentToken) error {
	what := "add enrollment token " + e.ID
	switch {
	case e.ID == "" || e.SecretHash == "":
		return fmt.Errorf("%s: %s: id and secret hash must not be empty", db.Name(), what)
	case e.Uses < 0:
		return fmt.Errorf("%s: %s: negative uses %d", db.Name(), what, e.Uses)
	case !e.Revoked.IsZero():
		return fmt.Errorf("%s: %s: a new token cannot be revoked", db.Name(), what)
	}
	if err := productExists(ctx, db, what, e.Product); err != nil {
		return err
	}
	ts, err := encodeTimes(e.Created, e.Expires)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", db.Name(), what, err)
	}
	_, err = db.Exec(ctx, `INSERT INTO enrollment_tokens (`+tokenCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, '')`,
		e.ID, e.Product, e.SecretHash, int64(e.Uses), boolInt(e.AutoAccept), ts[0], ts[1])
	if err != nil && db.Unique(err) {
		return fmt.Errorf("%s: %s: %w", db.Name(), what, store.ErrConflict)
	}
	if err != nil {
		return db.Err(ctx, what, err)
	}
	return nil
}

// PutEnrollmentToken updates a token's uses and revocation; see store.Tx.
func PutEnrollmentToken(ctx context.Context, db DB, e store.EnrollmentToken) error {
	what := "put enrollment token " + e.ID
	if e.Uses < 0 {
		return fmt.Errorf("%s: %s: negative uses %d", db.Name(), what, e.Uses)
	}
	revoked, err := encodeOptional(e.Revoked)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", db.Name(), what, err)
	}
	n, err := db.Exec(ctx, `UPDATE enrollment_tokens SET uses = $1, revoked = $2 WHERE id = $3`, int64(e.Uses), revoked, e.ID)
	if err != nil {
		return db.Err(ctx, what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %s: %w", db.Name(), what, store.ErrNotFound)
	}
	return nil
}

// AddPreauthorizedKey stores a pre-authorisation; see store.Tx.
func AddPreauthorizedKey(ctx context.Context, db DB, k store.PreauthorizedKey) error {
	what := "preauthorize key for " + k.Product
	if k.PublicKey == "" {
		return fmt.Errorf("%s: %s: empty public key", db.Name(), what)
	}
	if err := productExists(ctx, db, what, k.Product); err != nil {
		return err
	}
	ts, err := encodeTimes(k.Created)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", db.Name(), what, err)
	}
	_, err = db.Exec(ctx, `INSERT INTO preauthorized_keys (`+keyCols+`) VALUES ($1, $2, $3)`, k.PublicKey, k.Product, ts[0])
	if err != nil && db.Unique(err) {
		return fmt.Errorf("%s: %s: the key is pre-authorised already: %w", db.Name(), what, store.ErrConflict)
	}
	if err != nil {
		return db.Err(ctx, what, err)
	}
	return nil
}

// DeletePreauthorizedKey removes a pre-authorisation; see store.Tx.
func DeletePreauthorizedKey(ctx context.Context, db DB, key string) error {
	if _, err := db.Exec(ctx, `DELETE FROM preauthorized_keys WHERE public_key = $1`, key); err != nil {
		return db.Err(ctx, "delete preauthorized key", err)
	}
	return nil
}

// AddDeviceEvent appends an event; see store.Tx.
func AddDeviceEvent(ctx context.Context, db DB, e store.DeviceEvent) error {
	what := "add device event for " + e.Device
	if _, err := Device(ctx, db, e.Device); err != nil {
		return err
	}
	switch e.Kind {
	case store.EventOffered, store.EventDownloading, store.EventInstalling, store.EventRebooting,
		store.EventSucceeded, store.EventFailed, store.EventRolledBack, store.EventSkipped:
	default:
		return fmt.Errorf("%s: %s: unknown kind %q", db.Name(), what, e.Kind)
	}
	if e.Progress < 0 || e.Progress > 100 {
		return fmt.Errorf("%s: %s: progress %d out of 0..100", db.Name(), what, e.Progress)
	}
	ts, err := encodeTimes(e.Time)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", db.Name(), what, err)
	}
	_, err = db.Exec(ctx, `INSERT INTO device_events (`+eventCols+`)
		SELECT CAST($1 AS text), coalesce(max(seq), 0) + 1, CAST($2 AS text), CAST($3 AS text), CAST($4 AS text),
			CAST($5 AS bigint), CAST($6 AS text), CAST($7 AS text), CAST($8 AS text) FROM device_events WHERE device = $1`,
		e.Device, ts[0], e.Kind, e.Version, int64(e.Progress), e.ErrorClass, e.Message, e.Reason)
	if err != nil {
		return db.Err(ctx, what, err)
	}
	return nil
}

// PurgeEvents deletes the events older than before; Store.Purge calls it.
func PurgeEvents(ctx context.Context, db DB, before time.Time) (int64, error) {
	b, err := sqlrow.EncodeTime(before)
	if err != nil {
		return 0, fmt.Errorf("%s: purge device events: %w", db.Name(), err)
	}
	n, err := db.Exec(ctx, `DELETE FROM device_events WHERE time < $1`, b)
	if err != nil {
		return 0, db.Err(ctx, "purge device events", err)
	}
	return n, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// conds collects the conditions of a filtered query with their $n
// arguments, in order.
type conds struct {
	terms []string
	args  []any
}

// add appends cond, whose one %d becomes the $n of v.
func (c *conds) add(cond string, v any) {
	c.args = append(c.args, v)
	c.terms = append(c.terms, fmt.Sprintf(cond, len(c.args)))
}

// where is " WHERE a AND b …", or "" without conditions.
func (c *conds) where() string {
	if len(c.terms) == 0 {
		return ""
	}
	return ` WHERE ` + strings.Join(c.terms, " AND ")
}
