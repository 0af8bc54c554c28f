package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrust/uptrust/internal/store"
)

// Management API tokens (schema migration 4). Names are unique among
// tokens not revoked through the partial unique index tokens_live_name.

const tokenCols = `id, name, role, secret_hash, created, expires, revoked, last_used`

// Token returns the token with id.
func (r reader) Token(ctx context.Context, id string) (store.Token, error) {
	return one(ctx, r.q.QueryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE id = $1`, id),
		"token "+id, scanToken)
}

// Tokens returns every token ordered by name, then creation.
func (r reader) Tokens(ctx context.Context) ([]store.Token, error) {
	return queryAll(ctx, r.q, "tokens", `SELECT `+tokenCols+` FROM tokens ORDER BY name, created, id`, scanToken)
}

// AddToken stores tk; see store.Tx.
func (t *txn) AddToken(ctx context.Context, tk store.Token) error {
	what := fmt.Sprintf("add token %s", tk.Name)
	switch {
	case tk.ID == "" || tk.Name == "" || tk.SecretHash == "":
		return fmt.Errorf("store/postgres: %s: id, name and secret hash must not be empty", what)
	case !tk.Revoked.IsZero() || !tk.LastUsed.IsZero():
		return fmt.Errorf("store/postgres: %s: a new token cannot be revoked or used", what)
	}
	switch tk.Role {
	case store.RoleAdmin, store.RoleReleaseManager, store.RoleOperator, store.RoleAuditor:
	default:
		return fmt.Errorf("store/postgres: %s: unknown role %q", what, tk.Role)
	}
	created, err := encodeTime(tk.Created)
	if err != nil {
		return fmt.Errorf("store/postgres: %s: %w", what, err)
	}
	expires, err := encodeTime(tk.Expires)
	if err != nil {
		return fmt.Errorf("store/postgres: %s: %w", what, err)
	}
	_, err = t.exec(ctx, `INSERT INTO tokens (`+tokenCols+`) VALUES ($1, $2, $3, $4, $5, $6, '', '')`,
		tk.ID, tk.Name, tk.Role, tk.SecretHash, created, expires)
	switch {
	case err == nil:
		return nil
	case pgCode(err) == uniqueViolation:
		return fmt.Errorf("store/postgres: %s: a token with this name or id exists: %w", what, store.ErrConflict)
	}
	return dbErr(ctx, what, err)
}

// RevokeToken marks the token revoked; see store.Tx.
func (t *txn) RevokeToken(ctx context.Context, id string, at time.Time) error {
	what := "revoke token " + id
	tk, err := t.Token(ctx, id)
	if err != nil {
		return err
	}
	if !tk.Revoked.IsZero() {
		return fmt.Errorf("store/postgres: %s: revoked already at %s: %w", what, tk.Revoked.Format(time.RFC3339), store.ErrConflict)
	}
	when, err := encodeTime(at)
	if err != nil {
		return fmt.Errorf("store/postgres: %s: %w", what, err)
	}
	if _, err := t.exec(ctx, `UPDATE tokens SET revoked = $1 WHERE id = $2`, when, id); err != nil {
		return dbErr(ctx, what, err)
	}
	return nil
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
