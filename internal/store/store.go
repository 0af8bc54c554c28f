// Package store defines what the server persists and the errors it returns.
// Implementations live in sub-packages (sqlite/); storetest/ is the contract
// suite every implementation passes.
//
// Invariants every implementation keeps:
//   - Update runs its function in one transaction: all writes land or none.
//   - Metadata documents are append-only per (repo, role, version); putting
//     the same version twice with a different body is ErrConflict.
//   - Generation increases with every committed Update.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors returned by stores. Wrapped errors name the object.
var (
	ErrNotFound = errors.New("store: not found")
	ErrConflict = errors.New("store: conflict")
)

// Product is a product line.
type Product struct {
	Name     string
	Model    string
	Hardware []string
	Created  time.Time
}

// Release is a published release of a product.
type Release struct {
	Product         string
	Version         string
	SecurityVersion uint64
	Kind            string
	// Target is the TUF target path ("<product>/<version>").
	Target string
	Length int64
	SHA256 string
	// Manifest is the release manifest JSON as signed.
	Manifest []byte
	Created  time.Time
}

// Rollout is the public offer of one release of a product to its devices.
// There is at most one rollout per product.
type Rollout struct {
	Product string
	Version string
	Percent int
	Halted  bool
	Start   time.Time
	Updated time.Time
}

// Metadata is one signed TUF metadata document.
type Metadata struct {
	Repo    string // "release" or "fleet"
	Role    string // "root", "targets", "snapshot", "timestamp", "products/<name>"
	Version int64
	Body    []byte
	Expires time.Time
}

// ReportCount is a counter of anonymous reports.
type ReportCount struct {
	Product, Version, Outcome, ErrorClass string
	Count                                 int64
	// Day is the UTC day the reports arrived.
	Day time.Time
}

// Reader reads the store.
type Reader interface {
	Product(ctx context.Context, name string) (Product, error)
	Products(ctx context.Context) ([]Product, error)
	Release(ctx context.Context, product, version string) (Release, error)
	// Releases lists a product's releases, or all when product is "",
	// ordered by product then creation.
	Releases(ctx context.Context, product string) ([]Release, error)
	Rollout(ctx context.Context, product string) (Rollout, error)
	Rollouts(ctx context.Context) ([]Rollout, error)
	// LatestMetadata returns the highest version of a role.
	LatestMetadata(ctx context.Context, repo, role string) (Metadata, error)
	// AllMetadata returns every stored document of a repo.
	AllMetadata(ctx context.Context, repo string) ([]Metadata, error)
	ReportCounts(ctx context.Context) ([]ReportCount, error)
}

// Tx is a transaction: reads see its own writes.
type Tx interface {
	Reader
	PutProduct(ctx context.Context, p Product) error
	// AddRelease fails with ErrConflict when the version exists.
	AddRelease(ctx context.Context, r Release) error
	PutRollout(ctx context.Context, r Rollout) error
	PutMetadata(ctx context.Context, m Metadata) error
}

// Store is a persistent store.
type Store interface {
	Reader
	// Update runs fn in a transaction and commits when fn returns nil.
	Update(ctx context.Context, fn func(tx Tx) error) error
	// Generation changes after every committed Update.
	Generation(ctx context.Context) (int64, error)
	// AddReport adds n to a report counter for the UTC day of at.
	AddReport(ctx context.Context, c ReportCount) error
	Close() error
}
