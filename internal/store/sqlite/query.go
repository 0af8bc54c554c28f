package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/uptrust/uptrust/internal/store"
)

// querier is what reader needs: the read pool (*sql.DB) or a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// reader implements store.Reader over a querier.
type reader struct {
	q querier
}

// txn is the store.Tx given to Update's function. It is valid only until
// that function returns, and is not safe for concurrent use.
type txn struct {
	reader
}

const (
	productCols  = `name, model, hardware, created`
	releaseCols  = `product, version, security_version, kind, target, length, sha256, manifest, created`
	rolloutCols  = `product, version, percent, halted, start, updated`
	metadataCols = `repo, role, version, body, expires`
)

// queryAll runs query and scans every row with scan.
func queryAll[T any](ctx context.Context, q querier, what, query string, scan func(scanner) (T, error), args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, dbErr(ctx, what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, dbErr(ctx, what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(ctx, what, err)
	}
	return out, nil
}

// one scans a single row, translating no row into store.ErrNotFound.
func one[T any](ctx context.Context, row *sql.Row, what string, scan func(scanner) (T, error)) (T, error) {
	v, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return v, fmt.Errorf("store/sqlite: %s: %w", what, store.ErrNotFound)
	}
	if err != nil {
		return v, dbErr(ctx, what, err)
	}
	return v, nil
}

// Product returns the named product, or an error wrapping store.ErrNotFound.
func (r reader) Product(ctx context.Context, name string) (store.Product, error) {
	row := r.q.QueryRowContext(ctx, `SELECT `+productCols+` FROM products WHERE name = ?`, name)
	return one(ctx, row, "product "+name, scanProduct)
}

// Products returns every product ordered by name.
func (r reader) Products(ctx context.Context) ([]store.Product, error) {
	return queryAll(ctx, r.q, "products", `SELECT `+productCols+` FROM products ORDER BY name`, scanProduct)
}

// Release returns one release, or an error wrapping store.ErrNotFound.
func (r reader) Release(ctx context.Context, product, version string) (store.Release, error) {
	row := r.q.QueryRowContext(ctx,
		`SELECT `+releaseCols+` FROM releases WHERE product = ? AND version = ?`, product, version)
	return one(ctx, row, fmt.Sprintf("release %s %s", product, version), scanRelease)
}

// Releases returns the releases of product, or of every product when product
// is "", ordered by product, then creation time, then version.
func (r reader) Releases(ctx context.Context, product string) ([]store.Release, error) {
	const order = ` ORDER BY product, created, version`
	if product == "" {
		return queryAll(ctx, r.q, "releases", `SELECT `+releaseCols+` FROM releases`+order, scanRelease)
	}
	return queryAll(ctx, r.q, "releases of "+product,
		`SELECT `+releaseCols+` FROM releases WHERE product = ?`+order, scanRelease, product)
}

// Rollout returns a product's rollout, or an error wrapping store.ErrNotFound.
func (r reader) Rollout(ctx context.Context, product string) (store.Rollout, error) {
	row := r.q.QueryRowContext(ctx, `SELECT `+rolloutCols+` FROM rollouts WHERE product = ?`, product)
	return one(ctx, row, "rollout "+product, scanRollout)
}

// Rollouts returns every rollout ordered by product.
func (r reader) Rollouts(ctx context.Context) ([]store.Rollout, error) {
	return queryAll(ctx, r.q, "rollouts", `SELECT `+rolloutCols+` FROM rollouts ORDER BY product`, scanRollout)
}

// LatestMetadata returns the highest version of a role, or an error wrapping
// store.ErrNotFound when the role has none.
func (r reader) LatestMetadata(ctx context.Context, repo, role string) (store.Metadata, error) {
	row := r.q.QueryRowContext(ctx, `SELECT `+metadataCols+` FROM metadata
		WHERE repo = ? AND role = ? ORDER BY version DESC LIMIT 1`, repo, role)
	return one(ctx, row, fmt.Sprintf("metadata %s %s", repo, role), scanMetadata)
}

// AllMetadata returns every document of repo ordered by role, then version.
func (r reader) AllMetadata(ctx context.Context, repo string) ([]store.Metadata, error) {
	return queryAll(ctx, r.q, "metadata of "+repo,
		`SELECT `+metadataCols+` FROM metadata WHERE repo = ? ORDER BY role, version`, scanMetadata, repo)
}

// ReportCounts returns every counter ordered by day, product, version,
// outcome and error class. Day is midnight UTC.
func (r reader) ReportCounts(ctx context.Context) ([]store.ReportCount, error) {
	return queryAll(ctx, r.q, "report counts", `SELECT day, product, version, outcome, error_class, count
		FROM report_counts ORDER BY day, product, version, outcome, error_class`, scanReportCount)
}

// PutProduct creates p or replaces every field of the product named p.Name.
func (t *txn) PutProduct(ctx context.Context, p store.Product) error {
	what := "put product " + p.Name
	hw, err := json.Marshal(p.Hardware)
	if err != nil {
		return fmt.Errorf("store/sqlite: %s: hardware: %w", what, err)
	}
	created, err := encodeTime(p.Created)
	if err != nil {
		return fmt.Errorf("store/sqlite: %s: %w", what, err)
	}
	// Not INSERT OR REPLACE: that deletes the row first, which the foreign
	// keys of the product's releases forbid.
	_, err = t.q.ExecContext(ctx, `INSERT INTO products (`+productCols+`) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET
			model = excluded.model, hardware = excluded.hardware, created = excluded.created`,
		p.Name, p.Model, string(hw), created)
	if err != nil {
		return dbErr(ctx, what, err)
	}
	return nil
}

// AddRelease inserts r. It fails with store.ErrConflict when the product
// already has that version, and with store.ErrNotFound when the product does
// not exist. SecurityVersion must fit in an int64.
func (t *txn) AddRelease(ctx context.Context, r store.Release) error {
	what := fmt.Sprintf("add release %s %s", r.Product, r.Version)
	if r.SecurityVersion > math.MaxInt64 {
		return fmt.Errorf("store/sqlite: %s: security version %d above %d", what, r.SecurityVersion, int64(math.MaxInt64))
	}
	created, err := encodeTime(r.Created)
	if err != nil {
		return fmt.Errorf("store/sqlite: %s: %w", what, err)
	}
	manifest := r.Manifest
	if manifest == nil {
		manifest = []byte{} // NOT NULL
	}
	_, err = t.q.ExecContext(ctx, `INSERT INTO releases (`+releaseCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Product, r.Version, int64(r.SecurityVersion), r.Kind, r.Target, r.Length, r.SHA256, manifest, created)
	switch sqliteCode(err) {
	case 0:
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return fmt.Errorf("store/sqlite: release %s %s exists: %w", r.Product, r.Version, store.ErrConflict)
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return fmt.Errorf("store/sqlite: %s: product %s: %w", what, r.Product, store.ErrNotFound)
	}
	if err != nil {
		return dbErr(ctx, what, err)
	}
	return nil
}

// PutRollout creates or replaces the rollout of r.Product. It fails with
// store.ErrNotFound when release (r.Product, r.Version) does not exist.
// Percent must be within 0..100.
func (t *txn) PutRollout(ctx context.Context, r store.Rollout) error {
	what := fmt.Sprintf("put rollout %s %s", r.Product, r.Version)
	if r.Percent < 0 || r.Percent > 100 {
		return fmt.Errorf("store/sqlite: %s: percent %d outside 0..100", what, r.Percent)
	}
	start, err1 := encodeTime(r.Start)
	updated, err2 := encodeTime(r.Updated)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("store/sqlite: %s: %w", what, err)
	}
	_, err := t.q.ExecContext(ctx, `INSERT INTO rollouts (`+rolloutCols+`) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (product) DO UPDATE SET
			version = excluded.version, percent = excluded.percent, halted = excluded.halted,
			start = excluded.start, updated = excluded.updated`,
		r.Product, r.Version, r.Percent, r.Halted, start, updated)
	if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
		return fmt.Errorf("store/sqlite: %s: release: %w", what, store.ErrNotFound)
	}
	if err != nil {
		return dbErr(ctx, what, err)
	}
	return nil
}

// PutMetadata stores a document. Storing an identical document (same body
// and expiry) again is a no-op; storing a different one under an existing
// (repo, role, version) fails with store.ErrConflict. Version must be
// positive, as in TUF.
func (t *txn) PutMetadata(ctx context.Context, m store.Metadata) error {
	what := fmt.Sprintf("put metadata %s %s v%d", m.Repo, m.Role, m.Version)
	if m.Version < 1 {
		return fmt.Errorf("store/sqlite: %s: version must be positive", what)
	}
	expires, err := encodeTime(m.Expires)
	if err != nil {
		return fmt.Errorf("store/sqlite: %s: %w", what, err)
	}
	body := m.Body
	if body == nil {
		body = []byte{} // NOT NULL
	}
	res, err := t.q.ExecContext(ctx, `INSERT INTO metadata (`+metadataCols+`) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (repo, role, version) DO NOTHING`,
		m.Repo, m.Role, m.Version, body, expires)
	if err != nil {
		return dbErr(ctx, what, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return dbErr(ctx, what, err)
	} else if n == 1 {
		return nil
	}
	// The key exists: same document or a conflict.
	var oldBody []byte
	var oldExpires string
	err = t.q.QueryRowContext(ctx, `SELECT body, expires FROM metadata WHERE repo = ? AND role = ? AND version = ?`,
		m.Repo, m.Role, m.Version).Scan(&oldBody, &oldExpires)
	if err != nil {
		return dbErr(ctx, what, err)
	}
	if !bytes.Equal(oldBody, body) || oldExpires != expires {
		return fmt.Errorf("store/sqlite: metadata %s %s v%d exists with different content: %w",
			m.Repo, m.Role, m.Version, store.ErrConflict)
	}
	return nil
}
