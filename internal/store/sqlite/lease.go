package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AcquireLease takes or renews a lease in one upsert on the single writer
// connection; see store.Store.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error) {
	what := fmt.Sprintf("acquire lease %s for %s", name, holder)
	if name == "" || holder == "" || ttl <= 0 {
		return false, fmt.Errorf("store/sqlite: %s: name and holder must not be empty and ttl (%v) must be positive", what, ttl)
	}
	n, err := encodeTime(now)
	if err != nil {
		return false, fmt.Errorf("store/sqlite: %s: %w", what, err)
	}
	exp, err := encodeTime(now.Add(ttl))
	if err != nil {
		return false, fmt.Errorf("store/sqlite: %s: %w", what, err)
	}
	var got string
	err = s.w.QueryRowContext(ctx, `INSERT INTO leases (name, holder, expires) VALUES (?1, ?2, ?3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
		WHERE leases.expires <= ?4 OR leases.holder = ?2
		RETURNING holder`, name, holder, exp, n).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, dbErr(ctx, what, err)
	}
	return got == holder, nil
}

// ReleaseLease frees a lease its holder holds; see store.Store.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder); err != nil {
		return dbErr(ctx, fmt.Sprintf("release lease %s for %s", name, holder), err)
	}
	return nil
}
