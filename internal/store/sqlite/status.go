package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Known is the newest schema version this program knows.
var Known = len(migrations)

// Applied is one recorded migration.
type Applied struct {
	Version int
	Time    time.Time
}

// ReadStatus returns the schema version of the database file at path and
// the migrations recorded in it, without creating or changing anything.
func ReadStatus(ctx context.Context, path string) (current int, applied []Applied, err error) {
	if _, err := os.Stat(path); err != nil {
		return 0, nil, fmt.Errorf("store/sqlite: schema status: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, nil, err
	}
	db, err := sql.Open("sqlite", dsn(abs, "query_only(1)"))
	if err != nil {
		return 0, nil, err
	}
	defer db.Close()
	var has int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&has); err != nil {
		return 0, nil, fmt.Errorf("store/sqlite: schema status of %s: %w", path, openErr(ctx, err))
	}
	if has == 0 {
		return 0, nil, nil
	}
	applied, err = queryAll(ctx, db, "schema status", `SELECT version, applied FROM schema_migrations ORDER BY version`,
		func(s scanner) (Applied, error) {
			var a Applied
			var at string
			if err := s.Scan(&a.Version, &at); err != nil {
				return a, err
			}
			a.Time, err = decodeTime(at)
			return a, err
		})
	if err != nil {
		return 0, nil, err
	}
	if len(applied) > 0 {
		current = applied[len(applied)-1].Version
	}
	return current, applied, nil
}
