package sqldevice

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqlrow"
)

// Managed rollouts, groups and tags (schema 10), for both SQL stores.

const (
	rolloutCols = `id, product, seq, version, selection, plan, state, created, updated`
	labelCols   = `device, kind, name, added`
)

func scanManagedRollout(s sqlrow.Scanner) (store.ManagedRollout, error) {
	var r store.ManagedRollout
	var plan, state, created, updated string
	if err := s.Scan(&r.ID, &r.Product, &r.Seq, &r.Version, &r.Selection, &plan, &state, &created, &updated); err != nil {
		return r, err
	}
	r.Plan, r.State = []byte(plan), []byte(state)
	var err error
	if r.Created, err = sqlrow.DecodeTime(created); err != nil {
		return r, err
	}
	r.Updated, err = sqlrow.DecodeTime(updated)
	return r, err
}

func scanLabel(s sqlrow.Scanner) (store.DeviceLabel, error) {
	var l store.DeviceLabel
	var added string
	if err := s.Scan(&l.Device, &l.Kind, &l.Name, &added); err != nil {
		return l, err
	}
	var err error
	l.Added, err = sqlrow.DecodeTime(added)
	return l, err
}

// ManagedRollout reads a rollout; see store.Reader.
func ManagedRollout(ctx context.Context, db DB, id string) (store.ManagedRollout, error) {
	return one(ctx, db, "managed rollout "+id, scanManagedRollout,
		`SELECT `+rolloutCols+` FROM managed_rollouts WHERE id = $1`, id)
}

// ManagedRollouts lists rollouts; see store.Reader.
func ManagedRollouts(ctx context.Context, db DB, product string) ([]store.ManagedRollout, error) {
	return all(ctx, db, "managed rollouts", scanManagedRollout, `SELECT `+rolloutCols+` FROM managed_rollouts
		WHERE $1 = '' OR product = $1 ORDER BY product, seq`, product)
}

// DeviceLabels lists labels; see store.Reader.
func DeviceLabels(ctx context.Context, db DB, f store.LabelFilter) ([]store.DeviceLabel, error) {
	var c conds
	add := c.add
	if f.Product != "" {
		add("l.device IN (SELECT id FROM devices WHERE product = $%d)", f.Product)
	}
	if f.Device != "" {
		add("l.device = $%d", f.Device)
	}
	if f.Kind != "" {
		add("l.kind = $%d", f.Kind)
	}
	if f.Name != "" {
		add("l.name = $%d", f.Name)
	}
	q := `SELECT l.device, l.kind, l.name, l.added FROM device_labels l`
	q += c.where()
	q += ` ORDER BY l.kind, l.name, l.device`
	return all(ctx, db, "device labels", scanLabel, q, c.args...)
}

// LatestDeviceEvents reads the latest event of each device for a version;
// see store.Reader.
func LatestDeviceEvents(ctx context.Context, db DB, f store.OutcomeFilter) ([]store.DeviceEvent, error) {
	since, err := encodeOptional(f.Since)
	if err != nil {
		return nil, fmt.Errorf("%s: latest device events: %w", db.Name(), err)
	}
	cols := make([]string, 0, 9)
	for _, c := range strings.Split(eventCols, ", ") {
		cols = append(cols, "e."+c)
	}
	return all(ctx, db, "latest device events", scanEvent, `SELECT `+strings.Join(cols, ", ")+`
		FROM device_events e JOIN devices d ON d.id = e.device
		WHERE d.product = $1 AND e.version = $2 AND e.time >= $3
		AND e.seq = (SELECT max(x.seq) FROM device_events x WHERE x.device = e.device AND x.version = $2 AND x.time >= $3)
		ORDER BY e.device`, f.Product, f.Version, since)
}

// DeviceEventsSince reads the events received since a time; see
// store.Reader. The CROSS JOIN makes SQLite read the events first, by
// device_events_by_time (PostgreSQL plans it as an inner join).
func DeviceEventsSince(ctx context.Context, db DB, product string, since time.Time) ([]store.DeviceEvent, error) {
	s, err := sqlrow.EncodeTime(since)
	if err != nil {
		return nil, fmt.Errorf("%s: device events since: %w", db.Name(), err)
	}
	cols := make([]string, 0, 9)
	for _, c := range strings.Split(eventCols, ", ") {
		cols = append(cols, "e."+c)
	}
	return all(ctx, db, "device events since", scanEvent, `SELECT `+strings.Join(cols, ", ")+`
		FROM device_events e CROSS JOIN devices d
		WHERE d.id = e.device AND e.time >= $1 AND d.product = $2
		ORDER BY e.time, e.device, e.seq`, s, product)
}

func jsonObject(b []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}

// AddManagedRollout stores a rollout; see store.Tx.
func AddManagedRollout(ctx context.Context, db DB, r store.ManagedRollout) error {
	what := "add managed rollout " + r.ID
	switch {
	case r.ID == "":
		return fmt.Errorf("%s: %s: empty id", db.Name(), what)
	case !jsonObject(r.Plan) || !jsonObject(r.State):
		return fmt.Errorf("%s: %s: plan and state must be JSON objects", db.Name(), what)
	}
	var n int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM releases WHERE product = $1 AND version = $2`, r.Product, r.Version).Scan(&n); err != nil {
		return db.Err(ctx, what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %s: release %s %s: %w", db.Name(), what, r.Product, r.Version, store.ErrNotFound)
	}
	ts, err := encodeTimes(r.Created, r.Updated)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", db.Name(), what, err)
	}
	_, err = db.Exec(ctx, `INSERT INTO managed_rollouts (`+rolloutCols+`)
		SELECT CAST($1 AS text), CAST($2 AS text), coalesce(max(seq), 0) + 1, CAST($3 AS text), CAST($4 AS text),
			CAST($5 AS text), CAST($6 AS text), CAST($7 AS text), CAST($8 AS text)
		FROM managed_rollouts WHERE product = $2`,
		r.ID, r.Product, r.Version, r.Selection, string(r.Plan), string(r.State), ts[0], ts[1])
	if err != nil && db.Unique(err) {
		return fmt.Errorf("%s: %s: %w", db.Name(), what, store.ErrConflict)
	}
	if err != nil {
		return db.Err(ctx, what, err)
	}
	return nil
}

// PutManagedRolloutState replaces a rollout's state; see store.Tx.
func PutManagedRolloutState(ctx context.Context, db DB, id string, state []byte, updated time.Time) error {
	what := "put managed rollout state " + id
	if !jsonObject(state) {
		return fmt.Errorf("%s: %s: state must be a JSON object", db.Name(), what)
	}
	ts, err := encodeTimes(updated)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", db.Name(), what, err)
	}
	n, err := db.Exec(ctx, `UPDATE managed_rollouts SET state = $1, updated = $2 WHERE id = $3`, string(state), ts[0], id)
	if err != nil {
		return db.Err(ctx, what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %s: %w", db.Name(), what, store.ErrNotFound)
	}
	return nil
}

// AddDeviceLabel stores a label; see store.Tx.
func AddDeviceLabel(ctx context.Context, db DB, l store.DeviceLabel) error {
	what := fmt.Sprintf("add %s %q to device %s", l.Kind, l.Name, l.Device)
	switch {
	case l.Kind != store.LabelGroup && l.Kind != store.LabelTag:
		return fmt.Errorf("%s: %s: unknown label kind %q", db.Name(), what, l.Kind)
	case l.Name == "":
		return fmt.Errorf("%s: %s: empty name", db.Name(), what)
	}
	if _, err := Device(ctx, db, l.Device); err != nil {
		return err
	}
	ts, err := encodeTimes(l.Added)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", db.Name(), what, err)
	}
	_, err = db.Exec(ctx, `INSERT INTO device_labels (`+labelCols+`) VALUES ($1, $2, $3, $4)`, l.Device, l.Kind, l.Name, ts[0])
	if err != nil && db.Unique(err) {
		return fmt.Errorf("%s: %s: the device has it already: %w", db.Name(), what, store.ErrConflict)
	}
	if err != nil {
		return db.Err(ctx, what, err)
	}
	return nil
}

// DeleteDeviceLabel removes a label; see store.Tx.
func DeleteDeviceLabel(ctx context.Context, db DB, device, kind, name string) error {
	what := fmt.Sprintf("remove %s %q from device %s", kind, name, device)
	n, err := db.Exec(ctx, `DELETE FROM device_labels WHERE device = $1 AND kind = $2 AND name = $3`, device, kind, name)
	if err != nil {
		return db.Err(ctx, what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %s: %w", db.Name(), what, store.ErrNotFound)
	}
	return nil
}
