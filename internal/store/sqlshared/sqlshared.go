// Package sqlshared holds the SQL that the two SQL stores
// (internal/store/sqlite and internal/store/postgres) run alike: the
// published state (products, releases, rollouts, metadata), the compliance
// tables, settings, API tokens, leases and age-based purging. Each query is
// written once, with PostgreSQL's $n placeholders; the SQLite store rewrites
// them to ?n, which binds the same way. The device tables are in
// internal/store/sqldevice, which works the same way.
//
// A store passes a DB adapter over its reader, its writer or its
// transaction. What really differs stays in the stores: the schemas and
// their migrations, the transactions (PostgreSQL's advisory locks and
// savepoints, SQLite's single writer), the audit chain's locking, capped
// report counters, TouchToken's single statement and Describe.
//
// Every function checks its input before it writes: bad input is an error
// naming the problem, prefixed with DB.Name, and changes nothing.
package sqlshared

import (
	"context"
	"fmt"

	"github.com/uptrust/uptrust/internal/store/sqlrow"
)

// DB is what a store gives this package: a querier (a pool for reads, the
// writer or a transaction for writes) and its error classification.
type DB interface {
	sqlrow.Querier
	// Exec runs a write and returns the rows it affected. In a PostgreSQL
	// transaction it runs inside a savepoint, so a refused write leaves
	// the transaction usable.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// Unique reports a unique or primary key violation; ForeignKey a
	// foreign key violation.
	Unique(err error) bool
	ForeignKey(err error) bool
	// InsertionOrder is a column that orders a table's rows by insertion
	// where the table has no such column of its own: "rowid" in SQLite,
	// the identity column "id" in PostgreSQL.
	InsertionOrder() string
}

// errorf is an error of operation what, prefixed with the store's name.
func errorf(db DB, what, format string, args ...any) error {
	return fmt.Errorf("%s: %s: "+format, append([]any{db.Name(), what}, args...)...)
}
