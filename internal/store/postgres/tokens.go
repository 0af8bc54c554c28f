package postgres

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
	return sqlshared.Token(ctx, db{q: r.q}, id)
}

// Tokens returns every token ordered by name, then creation.
func (r reader) Tokens(ctx context.Context) ([]store.Token, error) {
	return sqlshared.Tokens(ctx, db{q: r.q})
}

// AddToken stores tk; see store.Tx.
func (t *txn) AddToken(ctx context.Context, tk store.Token) error {
	return sqlshared.AddToken(ctx, db{q: t.q, tx: t}, tk)
}

// RevokeToken marks the token revoked; see store.Tx.
func (t *txn) RevokeToken(ctx context.Context, id string, at time.Time) error {
	return sqlshared.RevokeToken(ctx, db{q: t.q, tx: t}, id, at)
}

// TouchToken records the day a token was used, in one statement that moves
// last_used forward only; see store.Store.
func (s *Store) TouchToken(ctx context.Context, id string, day time.Time) error {
	what := "touch token " + id
	d, err := encodeDay(day)
	if err != nil {
		return fmt.Errorf("store/postgres: %s: %w", what, err)
	}
	var found bool
	err = s.pool.QueryRow(ctx, `WITH touched AS (
			UPDATE tokens SET last_used = $1 WHERE id = $2 AND last_used < $1 RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM tokens WHERE id = $2)`, d, id).Scan(&found)
	if err != nil {
		return dbErr(ctx, what, err)
	}
	if !found {
		return fmt.Errorf("store/postgres: %s: %w", what, store.ErrNotFound)
	}
	return nil
}
