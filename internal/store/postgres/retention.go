package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrust/uptrust/internal/store"
)

// This file holds what the privacy side of the server needs from the
// database: age-based purging and a description of the live schema read
// from the COMMENT ON text migrate recorded from its "-- purpose:"
// comments. The audit log is in audit.go.

// minStorable is the earliest time the encodings can hold; nothing stored
// is older, so purging before it deletes nothing.
var minStorable = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)

// Purge deletes the rows of table older than before, in one statement (the
// audit log: in one transaction, see purgeAudit), and returns how many it
// deleted. See store.Store for what "older" means per
// table. It does not change the generation.
func (s *Store) Purge(ctx context.Context, table string, before time.Time) (int64, error) {
	what := "purge " + table
	var query, arg string
	var err error
	switch {
	case table != store.TableReportCounts && table != store.TableAudit && table != store.TableTokens &&
		table != store.TableDeviceEvents && table != store.TableDeviceNonces:
		return 0, fmt.Errorf("store/postgres: %s: %w", what, store.ErrNotPurgeable)
	case before.Before(minStorable):
		return 0, nil
	case table == store.TableDeviceEvents:
		return s.purgeDeviceEvents(ctx, before)
	case table == store.TableDeviceNonces:
		return s.purgeDeviceNonces(ctx, before)
	case table == store.TableAudit:
		return s.purgeAudit(ctx, before)
	case table == store.TableReportCounts:
		// A counter of day D holds reports from [D, D+24h). It goes once D
		// is before before rounded up to a whole day.
		b := before.UTC()
		day := b.Truncate(24 * time.Hour)
		if day.Before(b) {
			day = day.Add(24 * time.Hour)
		}
		query = `DELETE FROM report_counts WHERE day < $1`
		arg, err = encodeDay(day)
	default:
		query = `DELETE FROM tokens WHERE (revoked <> '' AND revoked < $1) OR expires < $1`
		arg, err = encodeTime(before)
	}
	if err != nil {
		return 0, fmt.Errorf("store/postgres: %s: %w", what, err)
	}
	tag, err := s.pool.Exec(ctx, query, arg)
	if err != nil {
		return 0, dbErr(ctx, what, err)
	}
	return tag.RowsAffected(), nil
}

// Describe returns every table of the database's current schema, read from
// the catalog, so it lists whatever the schema holds, including tables this
// program did not create. Purposes are the tables' and columns' comments
// (COMMENT ON), which migrate records from the "-- purpose:" comments of
// the schema; "" where there is none. Types are PostgreSQL's names for
// them.
func (s *Store) Describe(ctx context.Context) ([]store.Table, error) {
	type rel struct {
		oid  uint32
		name string
		desc string
	}
	rels, err := queryAll(ctx, s.pool, "describe", `SELECT c.oid, c.relname::text, coalesce(obj_description(c.oid, 'pg_class'), '')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
		ORDER BY c.relname::text COLLATE "C"`,
		func(sc scanner) (rel, error) {
			var r rel
			err := sc.Scan(&r.oid, &r.name, &r.desc)
			return r, err
		})
	if err != nil {
		return nil, err
	}
	tables := make([]store.Table, 0, len(rels))
	for _, r := range rels {
		cols, err := queryAll(ctx, s.pool, "describe "+r.name,
			`SELECT attname::text, format_type(atttypid, atttypmod), coalesce(col_description(attrelid, attnum), '')
			FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
			func(sc scanner) (store.Column, error) {
				var c store.Column
				err := sc.Scan(&c.Name, &c.Type, &c.Purpose)
				return c, err
			}, r.oid)
		if err != nil {
			return nil, err
		}
		tables = append(tables, store.Table{Name: r.name, Purpose: r.desc, Columns: cols})
	}
	return tables, nil
}
