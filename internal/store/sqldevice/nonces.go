package sqldevice

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqlrow"
)

// The device_nonces table (schema 8) is the nonce store every server on
// one database shares; see store.Store.UseDeviceNonce.

// UseNonce records n at now in one statement: an insert that, on the
// primary key (keyid, nonce), replaces the row only when it has expired.
// No row affected means the nonce is live: a replay (store.ErrConflict).
// Both SQLite (3.24+) and PostgreSQL (9.5+) run this upsert atomically.
func UseNonce(ctx context.Context, db DB, n store.DeviceNonce, now time.Time) error {
	what := "use device nonce"
	if n.KeyID == "" || n.Nonce == "" {
		return fmt.Errorf("%s: %s: keyid and nonce must not be empty", db.Name(), what)
	}
	ts, err := encodeTimes(n.Expires, now)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", db.Name(), what, err)
	}
	rows, err := db.Exec(ctx, `INSERT INTO device_nonces (keyid, nonce, expires) VALUES ($1, $2, $3)
		ON CONFLICT (keyid, nonce) DO UPDATE SET expires = excluded.expires WHERE device_nonces.expires < $4`,
		n.KeyID, n.Nonce, ts[0], ts[1])
	if err != nil {
		return db.Err(ctx, what, err)
	}
	if rows == 0 {
		return fmt.Errorf("%s: %s: nonce %q of key %q is already used: %w", db.Name(), what, n.Nonce, n.KeyID, store.ErrConflict)
	}
	return nil
}

// PurgeNonces deletes the nonces that expired before before; Store.Purge
// of store.TableDeviceNonces calls it.
func PurgeNonces(ctx context.Context, db DB, before time.Time) (int64, error) {
	b, err := sqlrow.EncodeTime(before)
	if err != nil {
		return 0, fmt.Errorf("%s: purge device nonces: %w", db.Name(), err)
	}
	n, err := db.Exec(ctx, `DELETE FROM device_nonces WHERE expires < $1`, b)
	if err != nil {
		return 0, db.Err(ctx, "purge device nonces", err)
	}
	return n, nil
}

// KeyID is devauth.KeyID of a public key stored as standard base64 (the
// devices table's encoding): the unpadded base64url SHA-256 of the raw
// key. It is repeated here so that the store does not depend on the
// request-signing package; internal/devnonce's tests check both agree.
// A key that does not decode yields "", which matches no row.
func KeyID(publicKey string) string {
	raw, err := base64.StdEncoding.DecodeString(publicKey)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
