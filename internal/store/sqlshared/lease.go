package sqlshared

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrust/uptrust/internal/store/sqlrow"
)

// AcquireLease takes or renews a lease in one upsert, atomic on its own:
// SQLite runs it on its single writer, PostgreSQL's row lock of ON CONFLICT
// DO UPDATE decides between racing holders; see store.Store.
func AcquireLease(ctx context.Context, db DB, name, holder string, ttl time.Duration, now time.Time) (bool, error) {
	what := fmt.Sprintf("acquire lease %s for %s", name, holder)
	if name == "" || holder == "" || ttl <= 0 {
		return false, errorf(db, what, "name and holder must not be empty and ttl (%v) must be positive", ttl)
	}
	n, err := sqlrow.EncodeTime(now)
	if err != nil {
		return false, errorf(db, what, "%w", err)
	}
	exp, err := sqlrow.EncodeTime(now.Add(ttl))
	if err != nil {
		return false, errorf(db, what, "%w", err)
	}
	var got string
	err = db.QueryRow(ctx, `INSERT INTO leases (name, holder, expires) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
		WHERE leases.expires <= $4 OR leases.holder = $2
		RETURNING holder`, name, holder, exp, n).Scan(&got)
	if err != nil && db.NoRows(err) {
		return false, nil
	}
	if err != nil {
		return false, db.Err(ctx, what, err)
	}
	return got == holder, nil
}

// ReleaseLease frees a lease its holder holds; see store.Store.
func ReleaseLease(ctx context.Context, db DB, name, holder string) error {
	if _, err := db.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return db.Err(ctx, fmt.Sprintf("release lease %s for %s", name, holder), err)
	}
	return nil
}
