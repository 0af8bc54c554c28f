package sqlite

import (
	"context"
	"fmt"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/uptrust/uptrust/internal/store"
)

const tokenCols = `id, name, role, secret_hash, created, expires, revoked, last_used`

// Token returns the token with id.
func (r reader) Token(ctx context.Context, id string) (store.Token, error) {
	return one(ctx, r.q.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE id = ?`, id),
		"token "+id, scanToken)
}

// Tokens returns every token ordered by name, then creation.
func (r reader) Tokens(ctx context.Context) ([]store.Token, error) {
	return queryAll(ctx, r.q, "tokens", `SELECT `+tokenCols+` FROM tokens ORDER BY name, created, id`, scanToken)
}

// AddToken stores t; see store.Tx.
func (t *txn) AddToken(ctx context.Context, tk store.Token) error {
	what := fmt.Sprintf("add token %s", tk.Name)
	switch {
	case tk.ID == "" || tk.Name == "" || tk.SecretHash == "":
		return fmt.Errorf("store/sqlite: %s: id, name and secret hash must not be empty", what)
	case !tk.Revoked.IsZero() || !tk.LastUsed.IsZero():
		return fmt.Errorf("store/sqlite: %s: a new token cannot be revoked or used", what)
	}
	switch tk.Role {
	case store.RoleAdmin, store.RoleReleaseManager, store.RoleOperator, store.RoleAuditor:
	default:
		return fmt.Errorf("store/sqlite: %s: unknown role %q", what, tk.Role)
	}
	created, err := encodeTime(tk.Created)
	if err != nil {
		return fmt.Errorf("store/sqlite: %s: %w", what, err)
	}
	expires, err := encodeTime(tk.Expires)
	if err != nil {
		return fmt.Errorf("store/sqlite: %s: %w", what, err)
	}
	_, err = t.q.ExecContext(ctx, `INSERT INTO tokens (`+tokenCols+`) VALUES (?, ?, ?, ?, ?, ?, '', '')`,
		tk.ID, tk.Name, tk.Role, tk.SecretHash, created, expires)
	switch sqliteCode(err) {
	case 0:
		return nil
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return fmt.Errorf("store/sqlite: %s: a token with this name or id exists: %w", what, store.ErrConflict)
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
		return fmt.Errorf("store/sqlite: %s: revoked already at %s: %w", what, tk.Revoked.Format(time.RFC3339), store.ErrConflict)
	}
	when, err := encodeTime(at)
	if err != nil {
		return fmt.Errorf("store/sqlite: %s: %w", what, err)
	}
	if _, err := t.q.ExecContext(ctx, `UPDATE tokens SET revoked = ? WHERE id = ?`, when, id); err != nil {
		return dbErr(ctx, what, err)
	}
	return nil
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
