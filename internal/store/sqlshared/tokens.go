package sqlshared

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqlrow"
)

// Management API tokens (schema migration 4). Names are unique among
// tokens not revoked through the partial unique index tokens_live_name.
// TouchToken stays in the stores: PostgreSQL does it in one statement.

// TokenCols are the tokens columns in the order sqlrow.Token reads them.
const TokenCols = `id, name, role, secret_hash, created, expires, revoked, last_used`

// Token returns the token with id.
func Token(ctx context.Context, db DB, id string) (store.Token, error) {
	return sqlrow.One(ctx, db, "token "+id, sqlrow.Token, `SELECT `+TokenCols+` FROM tokens WHERE id = $1`, id)
}

// Tokens returns every token ordered by name, then creation.
func Tokens(ctx context.Context, db DB) ([]store.Token, error) {
	return sqlrow.All(ctx, db, "tokens", sqlrow.Token, `SELECT `+TokenCols+` FROM tokens ORDER BY name, created, id`)
}

// AddToken stores tk; see store.Tx.
func AddToken(ctx context.Context, db DB, tk store.Token) error {
	what := fmt.Sprintf("add token %s", tk.Name)
	switch {
	case tk.ID == "" || tk.Name == "" || tk.SecretHash == "":
		return errorf(db, what, "id, name and secret hash must not be empty")
	case !tk.Revoked.IsZero() || !tk.LastUsed.IsZero():
		return errorf(db, what, "a new token cannot be revoked or used")
	}
	switch tk.Role {
	case store.RoleAdmin, store.RoleReleaseManager, store.RoleOperator, store.RoleAuditor:
	default:
		return errorf(db, what, "unknown role %q", tk.Role)
	}
	created, err := sqlrow.EncodeTime(tk.Created)
	if err != nil {
		return errorf(db, what, "%w", err)
	}
	expires, err := sqlrow.EncodeTime(tk.Expires)
	if err != nil {
		return errorf(db, what, "%w", err)
	}
	_, err = db.Exec(ctx, `INSERT INTO tokens (`+TokenCols+`) VALUES ($1, $2, $3, $4, $5, $6, '', '')`,
		tk.ID, tk.Name, tk.Role, tk.SecretHash, created, expires)
	switch {
	case err == nil:
		return nil
	case db.Unique(err):
		return errorf(db, what, "a token with this name or id exists: %w", store.ErrConflict)
	}
	return db.Err(ctx, what, err)
}

// RevokeToken marks the token revoked; see store.Tx.
func RevokeToken(ctx context.Context, db DB, id string, at time.Time) error {
	what := "revoke token " + id
	tk, err := Token(ctx, db, id)
	if err != nil {
		return err
	}
	if !tk.Revoked.IsZero() {
		return errorf(db, what, "revoked already at %s: %w", tk.Revoked.Format(time.RFC3339), store.ErrConflict)
	}
	when, err := sqlrow.EncodeTime(at)
	if err != nil {
		return errorf(db, what, "%w", err)
	}
	if _, err := db.Exec(ctx, `UPDATE tokens SET revoked = $1 WHERE id = $2`, when, id); err != nil {
		return db.Err(ctx, what, err)
	}
	return nil
}
