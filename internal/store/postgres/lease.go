package postgres

import (
	"context"
	"time"

	"github.com/uptrust/uptrust/internal/store/sqlshared"
)

// AcquireLease takes or renews a lease in one upsert on the pool; see
// store.Store.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error) {
	return sqlshared.AcquireLease(ctx, db{q: s.pool}, name, holder, ttl, now)
}

// ReleaseLease frees a lease its holder holds; see store.Store.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	return sqlshared.ReleaseLease(ctx, db{q: s.pool}, name, holder)
}
