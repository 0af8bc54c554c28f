package sqlshared

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqlrow"
)

// This file holds the published state: products, releases, rollouts, TUF
// metadata and the report counters' reads (AddReport stays in the stores:
// PostgreSQL caps counters under an advisory lock).

const (
	productCols  = `name, model, hardware, created`
	releaseCols  = `product, version, security_version, kind, target, length, sha256, manifest, created`
	rolloutCols  = `product, version, percent, halted, start, updated`
	metadataCols = `repo, role, version, body, expires`
)

// Product returns the named product, or an error wrapping store.ErrNotFound.
func Product(ctx context.Context, db DB, name string) (store.Product, error) {
	return sqlrow.One(ctx, db, "product "+name, sqlrow.Product,
		`SELECT `+productCols+` FROM products WHERE name = $1`, name)
}

// Products returns every product ordered by name.
func Products(ctx context.Context, db DB) ([]store.Product, error) {
	return sqlrow.All(ctx, db, "products", sqlrow.Product, `SELECT `+productCols+` FROM products ORDER BY name`)
}

// Release returns one release, or an error wrapping store.ErrNotFound.
func Release(ctx context.Context, db DB, product, version string) (store.Release, error) {
	return sqlrow.One(ctx, db, fmt.Sprintf("release %s %s", product, version), sqlrow.Release,
		`SELECT `+releaseCols+` FROM releases WHERE product = $1 AND version = $2`, product, version)
}

// Releases returns the releases of product, or of every product when product
// is "", ordered by product, then creation time, then version.
func Releases(ctx context.Context, db DB, product string) ([]store.Release, error) {
	const order = ` ORDER BY product, created, version`
	if product == "" {
		return sqlrow.All(ctx, db, "releases", sqlrow.Release, `SELECT `+releaseCols+` FROM releases`+order)
	}
	return sqlrow.All(ctx, db, "releases of "+product, sqlrow.Release,
		`SELECT `+releaseCols+` FROM releases WHERE product = $1`+order, product)
}

// Rollout returns a product's rollout, or an error wrapping store.ErrNotFound.
func Rollout(ctx context.Context, db DB, product string) (store.Rollout, error) {
	return sqlrow.One(ctx, db, "rollout "+product, sqlrow.Rollout,
		`SELECT `+rolloutCols+` FROM rollouts WHERE product = $1`, product)
}

// Rollouts returns every rollout ordered by product.
func Rollouts(ctx context.Context, db DB) ([]store.Rollout, error) {
	return sqlrow.All(ctx, db, "rollouts", sqlrow.Rollout, `SELECT `+rolloutCols+` FROM rollouts ORDER BY product`)
}

// LatestMetadata returns the highest version of a role, or an error wrapping
// store.ErrNotFound when the role has none.
func LatestMetadata(ctx context.Context, db DB, repo, role string) (store.Metadata, error) {
	return sqlrow.One(ctx, db, fmt.Sprintf("metadata %s %s", repo, role), sqlrow.Metadata,
		`SELECT `+metadataCols+` FROM metadata WHERE repo = $1 AND role = $2 ORDER BY version DESC LIMIT 1`, repo, role)
}

// AllMetadata returns every document of repo ordered by role, then version.
func AllMetadata(ctx context.Context, db DB, repo string) ([]store.Metadata, error) {
	return sqlrow.All(ctx, db, "metadata of "+repo, sqlrow.Metadata,
		`SELECT `+metadataCols+` FROM metadata WHERE repo = $1 ORDER BY role, version`, repo)
}

// ReportCounts returns every counter ordered by day, product, version,
// outcome and error class. Day is midnight UTC.
func ReportCounts(ctx context.Context, db DB) ([]store.ReportCount, error) {
	return sqlrow.All(ctx, db, "report counts", sqlrow.ReportCount, `SELECT day, product, version, outcome, error_class, count
		FROM report_counts ORDER BY day, product, version, outcome, error_class`)
}

// PutProduct creates p or replaces every field of the product named p.Name.
func PutProduct(ctx context.Context, db DB, p store.Product) error {
	what := "put product " + p.Name
	hw, err := json.Marshal(p.Hardware)
	if err != nil {
		return errorf(db, what, "hardware: %w", err)
	}
	created, err := sqlrow.EncodeTime(p.Created)
	if err != nil {
		return errorf(db, what, "%w", err)
	}
	// Not INSERT OR REPLACE: that deletes the row first, which the foreign
	// keys of the product's releases forbid.
	_, err = db.Exec(ctx, `INSERT INTO products (`+productCols+`) VALUES ($1, $2, $3, $4)
		ON CONFLICT (name) DO UPDATE SET
			model = excluded.model, hardware = excluded.hardware, created = excluded.created`,
		p.Name, p.Model, string(hw), created)
	if err != nil {
		return db.Err(ctx, what, err)
	}
	return nil
}

// AddRelease inserts r. It fails with store.ErrConflict when the product
// already has that version, and with store.ErrNotFound when the product does
// not exist. SecurityVersion must fit in an int64.
func AddRelease(ctx context.Context, db DB, r store.Release) error {
	what := fmt.Sprintf("add release %s %s", r.Product, r.Version)
	if r.SecurityVersion > math.MaxInt64 {
		return errorf(db, what, "security version %d above %d", r.SecurityVersion, int64(math.MaxInt64))
	}
	created, err := sqlrow.EncodeTime(r.Created)
	if err != nil {
		return errorf(db, what, "%w", err)
	}
	manifest := r.Manifest
	if manifest == nil {
		manifest = []byte{} // NOT NULL
	}
	_, err = db.Exec(ctx, `INSERT INTO releases (`+releaseCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		r.Product, r.Version, int64(r.SecurityVersion), r.Kind, r.Target, r.Length, r.SHA256, manifest, created)
	switch {
	case err == nil:
		return nil
	case db.Unique(err):
		return fmt.Errorf("%s: release %s %s exists: %w", db.Name(), r.Product, r.Version, store.ErrConflict)
	case db.ForeignKey(err):
		return errorf(db, what, "product %s: %w", r.Product, store.ErrNotFound)
	}
	return db.Err(ctx, what, err)
}

// PutRollout creates or replaces the rollout of r.Product. It fails with
// store.ErrNotFound when release (r.Product, r.Version) does not exist.
// Percent must be within 0..100.
func PutRollout(ctx context.Context, db DB, r store.Rollout) error {
	what := fmt.Sprintf("put rollout %s %s", r.Product, r.Version)
	if r.Percent < 0 || r.Percent > 100 {
		return errorf(db, what, "percent %d outside 0..100", r.Percent)
	}
	start, err1 := sqlrow.EncodeTime(r.Start)
	updated, err2 := sqlrow.EncodeTime(r.Updated)
	if err := errors.Join(err1, err2); err != nil {
		return errorf(db, what, "%w", err)
	}
	_, err := db.Exec(ctx, `INSERT INTO rollouts (`+rolloutCols+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (product) DO UPDATE SET
			version = excluded.version, percent = excluded.percent, halted = excluded.halted,
			start = excluded.start, updated = excluded.updated`,
		r.Product, r.Version, r.Percent, r.Halted, start, updated)
	if err != nil && db.ForeignKey(err) {
		return errorf(db, what, "release: %w", store.ErrNotFound)
	}
	if err != nil {
		return db.Err(ctx, what, err)
	}
	return nil
}

// PutMetadata stores a document. Storing an identical document (same body
// and expiry) again is a no-op; storing a different one under an existing
// (repo, role, version) fails with store.ErrConflict. Version must be
// positive, as in TUF.
func PutMetadata(ctx context.Context, db DB, m store.Metadata) error {
	what := fmt.Sprintf("put metadata %s %s v%d", m.Repo, m.Role, m.Version)
	if m.Version < 1 {
		return errorf(db, what, "version must be positive")
	}
	expires, err := sqlrow.EncodeTime(m.Expires)
	if err != nil {
		return errorf(db, what, "%w", err)
	}
	body := m.Body
	if body == nil {
		body = []byte{} // NOT NULL
	}
	n, err := db.Exec(ctx, `INSERT INTO metadata (`+metadataCols+`) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (repo, role, version) DO NOTHING`,
		m.Repo, m.Role, m.Version, body, expires)
	if err != nil {
		return db.Err(ctx, what, err)
	}
	if n == 1 {
		return nil
	}
	// The key exists: same document or a conflict.
	var oldBody []byte
	var oldExpires string
	err = db.QueryRow(ctx, `SELECT body, expires FROM metadata WHERE repo = $1 AND role = $2 AND version = $3`,
		m.Repo, m.Role, m.Version).Scan(&oldBody, &oldExpires)
	if err != nil {
		return db.Err(ctx, what, err)
	}
	if !bytes.Equal(oldBody, body) || oldExpires != expires {
		return fmt.Errorf("%s: metadata %s %s v%d exists with different content: %w",
			db.Name(), m.Repo, m.Role, m.Version, store.ErrConflict)
	}
	return nil
}
