package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/store"
)

// The audit hash chain in SQLite: audit rows carry their seq (the rowid),
// prev_hash and hash; the single row of audit_chain (created by migration
// 4 at the genesis) holds the anchor (last purged entry) and the head
// (last appended entry). Appends read the head and move it in the same
// IMMEDIATE transaction, so they are serialised. (A store with concurrent
// writers, such as PostgreSQL, reads the row FOR UPDATE.)

const auditCols = `seq, time, actor, role, action, object, detail, outcome, request_id, prev_hash, hash`

// Audit returns every audit entry in sequence order.
func (r reader) Audit(ctx context.Context) ([]store.AuditEntry, error) {
	return r.AuditQuery(ctx, store.AuditFilter{})
}

// AuditQuery returns the entries f selects; see store.Reader.
func (r reader) AuditQuery(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{
		{"action", f.Action}, {"object", f.Object}, {"actor", f.Actor}, {"outcome", f.Outcome},
	} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
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
			return nil, fmt.Errorf("store/sqlite: audit query: %w", err)
		}
		where = append(where, "time "+c.op+" ?")
		args = append(args, at)
	}
	order := "seq"
	switch {
	case f.Newest:
		order = "seq DESC"
		if f.AfterSeq > 0 {
			where = append(where, "seq < ?")
			args = append(args, f.AfterSeq)
		}
	case f.AfterSeq != 0:
		where = append(where, "seq > ?")
		args = append(args, f.AfterSeq)
	}
	q := `SELECT ` + auditCols + ` FROM audit`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY " + order
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	return queryAll(ctx, r.q, "audit", q, scanAudit, args...)
}

// AuditChain returns the anchor and head of the stored chain.
func (r reader) AuditChain(ctx context.Context) (store.AuditChain, error) {
	return readChain(ctx, r.q)
}

func readChain(ctx context.Context, q querier) (store.AuditChain, error) {
	c := store.AuditChain{AnchorHash: store.AuditGenesis, HeadHash: store.AuditGenesis}
	err := q.QueryRowContext(ctx, `SELECT anchor_seq, anchor_hash, head_seq, head_hash, legacy_seq FROM audit_chain WHERE id = 1`).
		Scan(&c.AnchorSeq, &c.AnchorHash, &c.HeadSeq, &c.HeadHash, &c.LegacySeq)
	if err == sql.ErrNoRows {
		return c, nil // the row is gone: start from the genesis, verify will say where it breaks
	}
	if err != nil {
		return c, dbErr(ctx, "audit chain", err)
	}
	return c, nil
}

// AddAudit appends e to the chain in the transaction; see store.Tx.
func (t *txn) AddAudit(ctx context.Context, e store.AuditEntry) error {
	return appendAudit(ctx, t.q, e)
}

func appendAudit(ctx context.Context, q querier, e store.AuditEntry) error {
	what := fmt.Sprintf("add audit %s %s", e.Action, e.Object)
	head, err := readChain(ctx, q)
	if err != nil {
		return err
	}
	e, err = store.SealAudit(head, e)
	if err != nil {
		return fmt.Errorf("store/sqlite: %s: %w", what, err)
	}
	if err := insertAudit(ctx, q, e); err != nil {
		return dbErr(ctx, what, err)
	}
	head.HeadSeq, head.HeadHash = e.Seq, e.Hash
	if err := writeChain(ctx, q, head); err != nil {
		return dbErr(ctx, what, err)
	}
	return nil
}

func insertAudit(ctx context.Context, q querier, e store.AuditEntry) error {
	at, err := encodeTime(e.Time)
	if err != nil {
		return err
	}
	_, err = q.ExecContext(ctx, `INSERT INTO audit (`+auditCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, at, e.Actor, e.Role, e.Action, e.Object, e.Detail, e.Outcome, e.RequestID, e.PrevHash, e.Hash)
	return err
}

func writeChain(ctx context.Context, q querier, c store.AuditChain) error {
	_, err := q.ExecContext(ctx, `INSERT INTO audit_chain (id, anchor_seq, anchor_hash, head_seq, head_hash, legacy_seq)
		VALUES (1, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET anchor_seq = excluded.anchor_seq, anchor_hash = excluded.anchor_hash,
			head_seq = excluded.head_seq, head_hash = excluded.head_hash, legacy_seq = excluded.legacy_seq`,
		c.AnchorSeq, c.AnchorHash, c.HeadSeq, c.HeadHash, c.LegacySeq)
	return err
}

// purgeAudit removes the chain's prefix up to the last entry older than
// before and makes that entry the anchor, in one transaction.
func (s *Store) purgeAudit(ctx context.Context, before time.Time) (n int64, err error) {
	const what = "purge audit"
	at, err := encodeTime(before.Truncate(time.Microsecond))
	if err != nil {
		return 0, fmt.Errorf("store/sqlite: %s: %w", what, err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, dbErr(ctx, what, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var cut sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max(seq) FROM audit WHERE time < ?`, at).Scan(&cut); err != nil {
		return 0, dbErr(ctx, what, err)
	}
	if !cut.Valid {
		return 0, tx.Commit()
	}
	c, err := readChain(ctx, tx)
	if err != nil {
		return 0, err
	}
	if err := tx.QueryRowContext(ctx, `SELECT hash FROM audit WHERE seq = ?`, cut.Int64).Scan(&c.AnchorHash); err != nil {
		return 0, dbErr(ctx, what, err)
	}
	c.AnchorSeq = cut.Int64
	res, err := tx.ExecContext(ctx, `DELETE FROM audit WHERE seq <= ?`, cut.Int64)
	if err != nil {
		return 0, dbErr(ctx, what, err)
	}
	if n, err = res.RowsAffected(); err != nil {
		return 0, dbErr(ctx, what, err)
	}
	if err := writeChain(ctx, tx, c); err != nil {
		return 0, dbErr(ctx, what, err)
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
		if err := appendAudit(ctx, tx, store.AuditEntry{Time: t, Action: l.action, Object: l.object, Detail: l.detail}); err != nil {
			return err
		}
	}
	if len(old) > 0 {
		c, err := readChain(ctx, tx)
		if err != nil {
			return err
		}
		c.LegacySeq = c.HeadSeq
		if err := writeChain(ctx, tx, c); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `DROP TABLE audit_legacy`)
	return err
}
