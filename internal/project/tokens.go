package project

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/uptrust/uptrust/internal/access"
	"github.com/uptrust/uptrust/internal/store"
)

// Management API tokens. The store keeps a hash of each token's secret;
// the token's text is returned once, by CreateToken and the bootstrap
// functions, and never again. Every change is audited, by the actor the
// context carries (see WithActor).

// AdminTokenFile is where Init writes the project's first admin token,
// relative to the project directory, mode 0600.
const AdminTokenFile = "admin-token"

// DefaultTokenTTL is how long a token lives when no expiry is given.
const DefaultTokenTTL = 90 * 24 * time.Hour

// Errors of Authenticate. Each is distinct so the API can log why; it
// should answer all of them with the same 401.
var (
	ErrTokenMalformed = errors.New("project: token is malformed")
	ErrTokenUnknown   = errors.New("project: token is unknown")
	ErrTokenExpired   = errors.New("project: token has expired")
	ErrTokenRevoked   = errors.New("project: token was revoked")
)

// Principal is who a token authenticates.
type Principal struct {
	// TokenID is the token's public id.
	TokenID string
	// Name is the token's name, the actor in the audit log.
	Name string
	Role access.Role
	// Expires is when the token stops being accepted.
	Expires time.Time
}

// Allows says whether the principal's role grants perm.
func (p Principal) Allows(perm access.Permission) bool { return p.Role.Allows(perm) }

// Actor returns the audit actor of a request made with the principal's
// token; pass it to WithActor.
func (p Principal) Actor(requestID string) Actor {
	return Actor{Name: p.Name, Role: string(p.Role), RequestID: requestID}
}

// TokenSpec describes a token to create.
type TokenSpec struct {
	Name string
	Role access.Role
	// TTL is how long the token is valid from now; 0 is DefaultTokenTTL.
	TTL time.Duration
}

// CreatedToken is a token just created: Text is the only copy of its
// secret.
type CreatedToken struct {
	Token store.Token
	Text  string
}

// CreateToken creates a token and records it in the audit log. A name
// used by a token not revoked is refused (store.ErrConflict).
func (p *Project) CreateToken(ctx context.Context, s TokenSpec) (CreatedToken, error) {
	tk, text, err := p.newToken(s)
	if err != nil {
		return CreatedToken{}, err
	}
	if err := p.addToken(ctx, tk, "created"); err != nil {
		return CreatedToken{}, err
	}
	return CreatedToken{Token: tk, Text: text}, nil
}

func (p *Project) newToken(s TokenSpec) (store.Token, string, error) {
	if err := access.CheckName(s.Name); err != nil {
		return store.Token{}, "", fmt.Errorf("project: create token: %w", err)
	}
	if _, err := access.ParseRole(string(s.Role)); err != nil {
		return store.Token{}, "", fmt.Errorf("project: create token %s: %w", s.Name, err)
	}
	if s.TTL < 0 {
		return store.Token{}, "", fmt.Errorf("project: create token %s: negative expiry %s", s.Name, s.TTL)
	}
	if s.TTL == 0 {
		s.TTL = DefaultTokenTTL
	}
	text, id, hash, err := access.NewToken()
	if err != nil {
		return store.Token{}, "", fmt.Errorf("project: create token %s: %w", s.Name, err)
	}
	now := p.Clock.Now().UTC()
	return store.Token{ID: id, Name: s.Name, Role: string(s.Role), SecretHash: hash, Created: now, Expires: now.Add(s.TTL)}, text, nil
}

func (p *Project) addToken(ctx context.Context, tk store.Token, how string) error {
	err := p.Store.Update(ctx, func(tx store.Tx) error {
		if err := tx.AddToken(ctx, tk); err != nil {
			return err
		}
		return audit(ctx, tx, tk.Created, ActionTokenCreate, tk.Name, fmt.Sprintf("%s: role %s, id %s, expires %s",
			how, tk.Role, tk.ID, tk.Expires.Format(time.RFC3339)))
	})
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("project: create token %s: a token of that name exists; revoke it first or choose another name: %w", tk.Name, err)
	}
	if err != nil {
		return fmt.Errorf("project: create token %s: %w", tk.Name, err)
	}
	return nil
}

// Tokens returns every token on record, revoked and expired ones
// included, ordered by name then creation.
func (p *Project) Tokens(ctx context.Context) ([]store.Token, error) {
	ts, err := p.Store.Tokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("project: tokens: %w", err)
	}
	return ts, nil
}

// RevokeToken revokes the token named name that is not revoked yet, and
// records it in the audit log. An unknown name wraps store.ErrNotFound.
func (p *Project) RevokeToken(ctx context.Context, name string) (store.Token, error) {
	ts, err := p.Tokens(ctx)
	if err != nil {
		return store.Token{}, err
	}
	var tk store.Token
	found, revoked := false, false
	for _, t := range ts {
		if t.Name != name {
			continue
		}
		if t.Revoked.IsZero() {
			tk, found = t, true
		} else {
			revoked = true
		}
	}
	if !found {
		if revoked {
			return store.Token{}, fmt.Errorf("project: revoke token %s: it is revoked already: %w", name, store.ErrConflict)
		}
		return store.Token{}, fmt.Errorf("project: revoke token %s: no such token (uptrust token list shows them): %w", name, store.ErrNotFound)
	}
	now := p.Clock.Now().UTC()
	err = p.Store.Update(ctx, func(tx store.Tx) error {
		if err := tx.RevokeToken(ctx, tk.ID, now); err != nil {
			return err
		}
		return audit(ctx, tx, now, ActionTokenRevoke, tk.Name, fmt.Sprintf("role %s, id %s", tk.Role, tk.ID))
	})
	if err != nil {
		return store.Token{}, fmt.Errorf("project: revoke token %s: %w", name, err)
	}
	tk.Revoked = now
	return tk, nil
}

// Authenticate checks a presented token (the text after "Bearer ") and
// returns whom it authenticates. Errors wrap ErrTokenMalformed,
// ErrTokenUnknown (no token with that id, or a wrong secret: the two are
// not told apart), ErrTokenRevoked or ErrTokenExpired, checked in that
// order and only after the secret matched, so the state of a token is
// not revealed to whoever merely knows its id. On success it records the
// day of use (store.Store.TouchToken); failing to is not an
// authentication failure.
func (p *Project) Authenticate(ctx context.Context, presented string) (Principal, error) {
	id, secret, err := access.ParseToken(presented)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrTokenMalformed, err)
	}
	tk, err := p.Store.Token(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, fmt.Errorf("%w: id %s", ErrTokenUnknown, id)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("project: authenticate: %w", err)
	}
	if !access.SecretMatches(secret, tk.SecretHash) {
		return Principal{}, fmt.Errorf("%w: id %s", ErrTokenUnknown, id)
	}
	now := p.Clock.Now().UTC()
	if !tk.Revoked.IsZero() {
		return Principal{}, fmt.Errorf("%w: %s at %s", ErrTokenRevoked, tk.Name, tk.Revoked.Format(time.RFC3339))
	}
	if !now.Before(tk.Expires) {
		return Principal{}, fmt.Errorf("%w: %s at %s", ErrTokenExpired, tk.Name, tk.Expires.Format(time.RFC3339))
	}
	if day := now.Truncate(24 * time.Hour); tk.LastUsed.Before(day) {
		_ = p.Store.TouchToken(ctx, tk.ID, day)
	}
	return Principal{TokenID: tk.ID, Name: tk.Name, Role: access.Role(tk.Role), Expires: tk.Expires}, nil
}

// BootstrapAdminToken gives a server its first admin token, for uptrust
// serve --bootstrap-token-file: when no admin token is valid (not
// revoked, not expired) it creates one named name, valid for ttl (0:
// DefaultTokenTTL), writes its text to path with mode 0600 and returns
// true. When a valid admin token exists it does nothing and returns false,
// leaving path alone. The file is written before the token is stored, so
// a token is never on record without someone holding its secret.
func (p *Project) BootstrapAdminToken(ctx context.Context, path, name string, ttl time.Duration) (bool, error) {
	ts, err := p.Tokens(ctx)
	if err != nil {
		return false, err
	}
	now := p.Clock.Now()
	for _, t := range ts {
		if t.Role == store.RoleAdmin && t.Revoked.IsZero() && now.Before(t.Expires) {
			return false, nil
		}
	}
	tk, text, err := p.newToken(TokenSpec{Name: name, Role: access.Admin, TTL: ttl})
	if err != nil {
		return false, err
	}
	if err := writeSecretFile(path, text+"\n"); err != nil {
		return false, fmt.Errorf("project: bootstrap admin token: %w", err)
	}
	// The file's name only: a path may name a person's home directory.
	if err := p.addToken(ctx, tk, "bootstrap admin token, written to "+filepath.Base(path)); err != nil {
		_ = os.Remove(path)
		return false, err
	}
	return true, nil
}

// writeSecretFile writes data to path with mode 0600, through a temporary
// file in the same directory renamed over path, so the secret is never in
// a file anyone else can read and a crash leaves no half-written token.
func writeSecretFile(path, data string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".token-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename, a no-op
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
