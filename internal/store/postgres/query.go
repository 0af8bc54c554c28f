package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqlrow"
	"github.com/uptrust/uptrust/internal/store/sqlshared"
)

// reader implements store.Reader over a querier.
type reader struct {
	q querier
}

// txn is the store.Tx given to Update's function. It is valid only until
// that function returns, and is not safe for concurrent use.
type txn struct {
	reader
}

// exec runs one write of the transaction inside a savepoint. PostgreSQL
// aborts a whole transaction on a failed statement; the store contract, as
// SQLite keeps it, lets the caller go on after a refused write (a
// duplicate release, an unknown product) and still commit the rest.
func (t *txn) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := pgx.BeginFunc(ctx, t.q, func(sp pgx.Tx) error {
		var err error
		tag, err = sp.Exec(ctx, sql, args...)
		return err
	})
	return tag, err
}

// queryAll runs query and scans every row with scan (sqlrow.All), for the
// queries that stay in this package.
func queryAll[T any](ctx context.Context, q querier, what, query string, scan func(scanner) (T, error), args ...any) ([]T, error) {
	return sqlrow.All(ctx, db{q: q}, what, scan, query, args...)
}

// The published state (products, releases, rollouts, metadata, report
// counters) is in internal/store/sqlshared.

// Product returns the named product, or an error wrapping store.ErrNotFound.
func (r reader) Product(ctx context.Context, name string) (store.Product, error) {
	return sqlshared.Product(ctx, db{q: r.q}, name)
}

// Products returns every product ordered by name.
func (r reader) Products(ctx context.Context) ([]store.Product, error) {
	return sqlshared.Products(ctx, db{q: r.q})
}

// Release returns one release, or an error wrapping store.ErrNotFound.
func (r reader) Release(ctx context.Context, product, version string) (store.Release, error) {
	return sqlshared.Release(ctx, db{q: r.q}, product, version)
}

// Releases returns the releases of product, or of every product when product
// is "", ordered by product, then creation time, then version.
func (r reader) Releases(ctx context.Context, product string) ([]store.Release, error) {
	return sqlshared.Releases(ctx, db{q: r.q}, product)
}

// Rollout returns a product's rollout, or an error wrapping store.ErrNotFound.
func (r reader) Rollout(ctx context.Context, product string) (store.Rollout, error) {
	return sqlshared.Rollout(ctx, db{q: r.q}, product)
}

// Rollouts returns every rollout ordered by product.
func (r reader) Rollouts(ctx context.Context) ([]store.Rollout, error) {
	return sqlshared.Rollouts(ctx, db{q: r.q})
}

// LatestMetadata returns the highest version of a role, or an error wrapping
// store.ErrNotFound when the role has none.
func (r reader) LatestMetadata(ctx context.Context, repo, role string) (store.Metadata, error) {
	return sqlshared.LatestMetadata(ctx, db{q: r.q}, repo, role)
}

// AllMetadata returns every document of repo ordered by role, then version.
func (r reader) AllMetadata(ctx context.Context, repo string) ([]store.Metadata, error) {
	return sqlshared.AllMetadata(ctx, db{q: r.q}, repo)
}

// ReportCounts returns every counter ordered by day, product, version,
// outcome and error class. Day is midnight UTC.
func (r reader) ReportCounts(ctx context.Context) ([]store.ReportCount, error) {
	return sqlshared.ReportCounts(ctx, db{q: r.q})
}

// PutProduct creates p or replaces every field of the product named p.Name.
func (t *txn) PutProduct(ctx context.Context, p store.Product) error {
	return sqlshared.PutProduct(ctx, db{q: t.q, tx: t}, p)
}

// AddRelease inserts r; see sqlshared.AddRelease.
func (t *txn) AddRelease(ctx context.Context, r store.Release) error {
	return sqlshared.AddRelease(ctx, db{q: t.q, tx: t}, r)
}

// PutRollout creates or replaces the rollout of r.Product; see
// sqlshared.PutRollout.
func (t *txn) PutRollout(ctx context.Context, r store.Rollout) error {
	return sqlshared.PutRollout(ctx, db{q: t.q, tx: t}, r)
}

// PutMetadata stores a document; see sqlshared.PutMetadata.
func (t *txn) PutMetadata(ctx context.Context, m store.Metadata) error {
	return sqlshared.PutMetadata(ctx, db{q: t.q, tx: t}, m)
}
