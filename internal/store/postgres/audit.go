package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqlshared"
)

// The audit hash chain in PostgreSQL (schema migration 4), as in the SQLite
// store: audit rows carry their seq, prev_hash and hash; the single row of
// audit_chain (created by migration 4 at the genesis) holds the anchor
// (last purged entry) and the head (last appended entry). Every append and
// every audit purge first reads that row FOR UPDATE, so they are serialised
// across connections and replicas even outside the update lock: two
// transactions never take the same seq, and a purge never moves the anchor
// past an append it did not see.

// The queries of the chain are in internal/store/sqlshared.

// Audit returns every audit entry in sequence order.
func (r reader) Audit(ctx context.Context) ([]store.AuditEntry, error) {
	return r.AuditQuery(ctx, store.AuditFilter{})
}

// AuditQuery returns the entries f selects; see store.Reader.
func (r reader) AuditQuery(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	return sqlshared.AuditQuery(ctx, db{q: r.q}, f)
}

// AuditChain returns the anchor and head of the stored chain.
func (r reader) AuditChain(ctx context.Context) (store.AuditChain, error) {
	return sqlshared.ReadChain(ctx, db{q: r.q}, false)
}

// AddAudit appends e to the chain in the transaction, inside a savepoint
// (as every write of a txn), so a refused entry leaves the transaction
// usable; see store.Tx.
func (t *txn) AddAudit(ctx context.Context, e store.AuditEntry) (err error) {
	what := fmt.Sprintf("add audit %s %s", e.Action, e.Object)
	sp, err := t.q.Begin(ctx)
	if err != nil {
		return dbErr(ctx, what, err)
	}
	defer func() {
		if err != nil {
			_ = sp.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err := sqlshared.AppendAudit(ctx, db{q: sp}, e, true); err != nil {
		return err
	}
	if err := sp.Commit(ctx); err != nil {
		return dbErr(ctx, what, err)
	}
	return nil
}

// purgeAudit removes the chain's prefix up to the last entry older than
// before and makes that entry the anchor, in one transaction holding the
// chain's row.
func (s *Store) purgeAudit(ctx context.Context, before time.Time) (n int64, err error) {
	const what = "purge audit"
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, dbErr(ctx, what, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if n, err = sqlshared.PurgeAudit(ctx, db{q: tx}, before, true); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, dbErr(ctx, what, err)
	}
	return n, nil
}

// legacyAuditOrder is how schema 3 ordered its audit table, which had no
// sequence: by time, then by inserting transaction (each AddAudit ran in
// its own savepoint, whose transaction id is assigned at its insert, and
// Updates took the update lock before they wrote, so transaction ids grew
// in insertion order; age(xmin) compares them modulo 2^31 as PostgreSQL
// does), then by the command within it.
const legacyAuditOrder = ` ORDER BY time, age(xmin) DESC, cmin::text::bigint`

// chainLegacyAudit is the Go half of migration 4: it appends the entries
// of audit_legacy to the new chain in the order schema 3 listed them (time,
// then insertion) as successful CLI actions, records how many there were
// as the chain's legacy part, and drops audit_legacy.
func chainLegacyAudit(ctx context.Context, tx pgx.Tx) error {
	type legacy struct{ at, action, object, detail string }
	old, err := queryAll(ctx, tx, "read legacy audit", `SELECT time, action, object, detail FROM audit_legacy`+legacyAuditOrder,
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
			return fmt.Errorf("legacy audit entry %s %s: %w", l.action, l.object, err)
		}
		if err := sqlshared.AppendAudit(ctx, db{q: tx}, store.AuditEntry{Time: t, Action: l.action, Object: l.object, Detail: l.detail}, true); err != nil {
			return err
		}
	}
	if len(old) > 0 {
		c, err := sqlshared.ReadChain(ctx, db{q: tx}, true)
		if err != nil {
			return err
		}
		c.LegacySeq = c.HeadSeq
		if err := sqlshared.WriteChain(ctx, db{q: tx}, c); err != nil {
			return fmt.Errorf("record the legacy part of the audit chain: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `DROP TABLE audit_legacy`); err != nil {
		return fmt.Errorf("drop audit_legacy: %w", err)
	}
	return nil
}
