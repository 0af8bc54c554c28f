package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqlshared"
)

// Management API tokens (schema migration 4) are in internal/store/sqlshared,
// but for TouchToken.

// Token returns the token with id.
func (r reader) Token(ctx context.Context, id string) (store.Token, error) {
	return sqlshared.Token(ctx, db{r.q}, id)
}

// Tokens returns every token ordered by name, then creation.
func (r reader) Tokens(ctx context.Context) ([]store.Token, error) {
	return sqlshared.Tokens(ctx, db{r.q})
}

// AddToken stores tk; see store.Tx.
func (t *txn) AddToken(ctx context.Context, tk store.Token) error {
	return sqlshared.AddToken(ctx, db{t.q}, tk)
}

// RevokeToken marks the token revoked; see store.Tx.
func (t *txn) RevokeToken(ctx context.Context, id string, at time.Time) error {
	return sqlshared.RevokeToken(ctx, db{t.q}, id, at)
}

// TouchToken records the day a token was used; see store.Store.
func (s *Store) TouchToken(ctx context.Context, id string, day time.Time) error {
	what := "touch token " + id
	d, err := encodeDay(day)
	if err != nil {
		return fmt.Errorf("store/sqlite: %s: %w", what, err)
	}
	var found int
	if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM tokens WHERE id = ?`, id).Scan(&found); err != nil {
		return dbErr(ctx, what, err)
	}
	if found == 0 {
		return fmt.Errorf("store/sqlite: %s: %w", what, store.ErrNotFound)
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE tokens SET last_used = ?1 WHERE id = ?2 AND last_used < ?1`, d, id); err != nil {
		return dbErr(ctx, what, err)
	}
	return nil
}
