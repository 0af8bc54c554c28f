package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AcquireLease takes or renews a lease in one upsert, atomic on its own
// (the row lock of ON CONFLICT DO UPDATE decides between racing holders);
// see store.Store.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error) {
	what := fmt.Sprintf("acquire lease %s for %s", name, holder)
	if name == "" || holder == "" || ttl <= 0 {
		return false, fmt.Errorf("store/postgres: %s: name and holder must not be empty and ttl (%v) must be positive", what, ttl)
	}
	n, err := encodeTime(now)
	if err != nil {
		return false, fmt.Errorf("store/postgres: %s: %w", what, err)
	}
	exp, err := encodeTime(now.Add(ttl))
	if err != nil {
		return false, fmt.Errorf("store/postgres: %s: %w", what, err)
	}
	var got string
	err = s.pool.QueryRow(ctx, `INSERT INTO leases (name, holder, expires) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
		WHERE leases.expires <= $4 OR leases.holder = $2
		RETURNING holder`, name, holder, exp, n).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, dbErr(ctx, what, err)
	}
	return got == holder, nil
}

// ReleaseLease frees a lease its holder holds; see store.Store.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return dbErr(ctx, fmt.Sprintf("release lease %s for %s", name, holder), err)
	}
	return nil
}
