package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqlshared"
)

// The audit hash chain in SQLite: audit rows carry their seq (the rowid),
// prev_hash and hash; the single row of audit_chain (created by migration
// 4 at the genesis) holds the anchor (last purged entry) and the head
// (last appended entry). Appends read the head and move it in the same
// IMMEDIATE transaction, so they are serialised. (A store with concurrent
// writers, such as PostgreSQL, reads the row FOR UPDATE.)

// The queries of the chain are in internal/store/sqlshared.

// Audit returns every audit entry in sequence order.
func (r reader) Audit(ctx context.Context) ([]store.AuditEntry, error) {
	return r.AuditQuery(ctx, store.AuditFilter{})
}

// AuditQuery returns the entries f selects; see store.Reader.
func (r reader) AuditQuery(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	return sqlshared.AuditQuery(ctx, db{r.q}, f)
}

// AuditChain returns the anchor and head of the stored chain.
func (r reader) AuditChain(ctx context.Context) (store.AuditChain, error) {
	return sqlshared.ReadChain(ctx, db{r.q}, false)
}

// AddAudit appends e to the chain in the transaction; see store.Tx.
func (t *txn) AddAudit(ctx context.Context, e store.AuditEntry) error {
	return sqlshared.AppendAudit(ctx, db{t.q}, e, false)
}

// purgeAudit removes the chain's prefix up to the last entry older than
// before and makes that entry the anchor, in one transaction.
func (s *Store) purgeAudit(ctx context.Context, before time.Time) (n int64, err error) {
	const what = "purge audit"
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, dbErr(ctx, what, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if n, err = sqlshared.PurgeAudit(ctx, db{tx}, before, false); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, dbErr(ctx, what, err)
	}
	return n, nil
}

// chainLegacyAudit is the Go half of migration 4: it appends the entries
// of audit_legacy to the new chain in the order the old schema listed them
// (time, then insertion) as successful CLI actions, records how many there
// were as the chain's legacy part, and drops audit_legacy.
func chainLegacyAudit(ctx context.Context, tx *sql.Tx) error {
	type legacy struct{ at, action, object, detail string }
	old, err := queryAll(ctx, tx, "read legacy audit", `SELECT time, action, object, detail FROM audit_legacy ORDER BY time, rowid`,
		func(s scanner) (legacy, error) {
			var l legacy
			err := s.Scan(&l.at, &l.action, &l.object, &l.detail)
			return l, err
		})
	if err != nil {
		return err
	}
	for _, l := range old {
		t, err := decodeTime(l.at)
		if err != nil {
			return err
		}
		if err := sqlshared.AppendAudit(ctx, db{tx}, store.AuditEntry{Time: t, Action: l.action, Object: l.object, Detail: l.detail}, false); err != nil {
			return err
		}
	}
	if len(old) > 0 {
		c, err := sqlshared.ReadChain(ctx, db{tx}, false)
		if err != nil {
			return err
		}
		c.LegacySeq = c.HeadSeq
		if err := sqlshared.WriteChain(ctx, db{tx}, c); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `DROP TABLE audit_legacy`)
	return err
}
