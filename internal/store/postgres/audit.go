package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/uptrust/uptrust/internal/store"
)

// The audit hash chain in PostgreSQL (schema migration 4), as in the SQLite
// store: audit rows carry their seq, prev_hash and hash; the single row of
// audit_chain (created by migration 4 at the genesis) holds the anchor
// (last purged entry) and the head (last appended entry). Every append and
// every audit purge first reads that row FOR UPDATE, so they are serialised
// across connections and replicas even outside the update lock: two
// transactions never take the same seq, and a purge never moves the anchor
// past an append it did not see.

const auditCols = `seq, time, actor, role, action, object, detail, outcome, request_id, prev_hash, hash`

// auditOrder orders audit entries by their position in the chain.
const auditOrder = ` ORDER BY seq`

// Audit returns every audit entry in sequence order.
func (r reader) Audit(ctx context.Context) ([]store.AuditEntry, error) {
	return r.AuditQuery(ctx, store.AuditFilter{})
}

// AuditQuery returns the entries f selects; see store.Reader.
func (r reader) AuditQuery(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	for _, c := range []struct{ col, v string }{
		{"action", f.Action}, {"object", f.Object}, {"actor", f.Actor}, {"outcome", f.Outcome},
	} {
		if c.v != "" {
			where = append(where, c.col+" = "+arg(c.v))
		}
	}
	for _, c := range []struct {
		op string
		t  time.Time
	}{{">=", f.Since}, {"<", f.Until}} {
		if c.t.IsZero() {
			continue
		}
		at, err := encodeTime(c.t.Truncate(time.Microsecond))
		if err != nil {
			return nil, fmt.Errorf("store/postgres: audit query: %w", err)
		}
		where = append(where, "time "+c.op+" "+arg(at))
	}
	order := auditOrder
	switch {
	case f.Newest:
		order = ` ORDER BY seq DESC`
		if f.AfterSeq > 0 {
			where = append(where, "seq < "+arg(f.AfterSeq))
		}
	case f.AfterSeq != 0:
		where = append(where, "seq > "+arg(f.AfterSeq))
	}
	q := `SELECT ` + auditCols + ` FROM audit`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += order
	if f.Limit > 0 {
		q += " LIMIT " + arg(f.Limit)
	}
	return queryAll(ctx, r.q, "audit", q, scanAudit, args...)
}

// AuditChain returns the anchor and head of the stored chain.
func (r reader) AuditChain(ctx context.Context) (store.AuditChain, error) {
	return readChain(ctx, r.q, "")
}

// readChain reads the audit_chain row, with lock appended to the query
// ("" or " FOR UPDATE"). A missing row reads as the genesis: verification
// then says where the chain breaks.
func readChain(ctx context.Context, q querier, lock string) (store.AuditChain, error) {
	c := store.AuditChain{AnchorHash: store.AuditGenesis, HeadHash: store.AuditGenesis}
	err := q.QueryRow(ctx, `SELECT anchor_seq, anchor_hash, head_seq, head_hash, legacy_seq FROM audit_chain WHERE id = 1`+lock).
		Scan(&c.AnchorSeq, &c.AnchorHash, &c.HeadSeq, &c.HeadHash, &c.LegacySeq)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, nil
	}
	if err != nil {
		return c, dbErr(ctx, "audit chain", err)
	}
	return c, nil
}

// writeChain stores c as the audit_chain row.
func writeChain(ctx context.Context, q querier, c store.AuditChain) error {
	_, err := q.Exec(ctx, `INSERT INTO audit_chain (id, anchor_seq, anchor_hash, head_seq, head_hash, legacy_seq)
		VALUES (1, $1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET anchor_seq = excluded.anchor_seq, anchor_hash = excluded.anchor_hash,
			head_seq = excluded.head_seq, head_hash = excluded.head_hash, legacy_seq = excluded.legacy_seq`,
		c.AnchorSeq, c.AnchorHash, c.HeadSeq, c.HeadHash, c.LegacySeq)
	return err
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
	if err := appendAudit(ctx, sp, e); err != nil {
		return err
	}
	if err := sp.Commit(ctx); err != nil {
		return dbErr(ctx, what, err)
	}
	return nil
}

// appendAudit locks the chain's row, seals e after its head, inserts it and
// moves the head to it.
func appendAudit(ctx context.Context, q querier, e store.AuditEntry) error {
	what := fmt.Sprintf("add audit %s %s", e.Action, e.Object)
	head, err := readChain(ctx, q, " FOR UPDATE")
	if err != nil {
		return err
	}
	e, err = store.SealAudit(head, e)
	if err != nil {
		return fmt.Errorf("store/postgres: %s: %w", what, err)
	}
	at, err := encodeTime(e.Time)
	if err != nil {
		return fmt.Errorf("store/postgres: %s: %w", what, err)
	}
	if _, err := q.Exec(ctx, `INSERT INTO audit (`+auditCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		e.Seq, at, e.Actor, e.Role, e.Action, e.Object, e.Detail, e.Outcome, e.RequestID, e.PrevHash, e.Hash); err != nil {
		return dbErr(ctx, what, err)
	}
	head.HeadSeq, head.HeadHash = e.Seq, e.Hash
	if err := writeChain(ctx, q, head); err != nil {
		return dbErr(ctx, what, err)
	}
	return nil
}

// purgeAudit removes the chain's prefix up to the last entry older than
// before and makes that entry the anchor, in one transaction holding the
// chain's row.
func (s *Store) purgeAudit(ctx context.Context, before time.Time) (n int64, err error) {
	const what = "purge audit"
	at, err := encodeTime(before.Truncate(time.Microsecond))
	if err != nil {
		return 0, fmt.Errorf("store/postgres: %s: %w", what, err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, dbErr(ctx, what, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	c, err := readChain(ctx, tx, " FOR UPDATE")
	if err != nil {
		return 0, err
	}
	var cut *int64
	if err := tx.QueryRow(ctx, `SELECT max(seq) FROM audit WHERE time < $1`, at).Scan(&cut); err != nil {
		return 0, dbErr(ctx, what, err)
	}
	if cut != nil {
		if err := tx.QueryRow(ctx, `SELECT hash FROM audit WHERE seq = $1`, *cut).Scan(&c.AnchorHash); err != nil {
			return 0, dbErr(ctx, what, err)
		}
		c.AnchorSeq = *cut
		tag, err := tx.Exec(ctx, `DELETE FROM audit WHERE seq <= $1`, *cut)
		if err != nil {
			return 0, dbErr(ctx, what, err)
		}
		n = tag.RowsAffected()
		if err := writeChain(ctx, tx, c); err != nil {
			return 0, dbErr(ctx, what, err)
		}
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
		if err := appendAudit(ctx, tx, store.AuditEntry{Time: t, Action: l.action, Object: l.object, Detail: l.detail}); err != nil {
			return err
		}
	}
	if len(old) > 0 {
		c, err := readChain(ctx, tx, " FOR UPDATE")
		if err != nil {
			return err
		}
		c.LegacySeq = c.HeadSeq
		if err := writeChain(ctx, tx, c); err != nil {
			return fmt.Errorf("record the legacy part of the audit chain: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `DROP TABLE audit_legacy`); err != nil {
		return fmt.Errorf("drop audit_legacy: %w", err)
	}
	return nil
}
