package postgres

import (
	"context"
	"time"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqlshared"
)

// This file holds what the privacy side of the server needs from the
// database: age-based purging and a description of the live schema read
// from the COMMENT ON text migrate recorded from its "-- purpose:"
// comments. The audit log is in audit.go.

// Purge deletes the rows of table older than before, in one statement
// on the pool (the audit log: in one transaction, see purgeAudit), and
// returns how many it deleted; the SQL is in internal/store/sqlshared. See
// store.Store for what "older" means per table. It does not change the
// generation.
func (s *Store) Purge(ctx context.Context, table string, before time.Time) (int64, error) {
	return sqlshared.Purge(ctx, db{q: s.pool}, table, before, s.purgeAudit)
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
