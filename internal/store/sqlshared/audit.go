package sqlshared

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqlrow"
)

// The audit hash chain (schema migration 4): audit rows carry their seq,
// prev_hash and hash; the single row of audit_chain (created by migration 4
// at the genesis) holds the anchor (last purged entry) and the head (last
// appended entry). The functions here run inside the store's transaction,
// which serialises them: SQLite's single IMMEDIATE writer, or PostgreSQL
// reading the chain's row FOR UPDATE (forUpdate true), so that two
// transactions never take the same seq and a purge never moves the anchor
// past an append it did not see.

const auditCols = `seq, time, actor, role, action, object, detail, outcome, request_id, prev_hash, hash`

// AuditQuery returns the entries f selects; see store.Reader.
func AuditQuery(ctx context.Context, db DB, f store.AuditFilter) ([]store.AuditEntry, error) {
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
		at, err := sqlrow.EncodeTime(c.t.Truncate(time.Microsecond))
		if err != nil {
			return nil, errorf(db, "audit query", "%w", err)
		}
		where = append(where, "time "+c.op+" "+arg(at))
	}
	order := ` ORDER BY seq`
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
	return sqlrow.All(ctx, db, "audit", sqlrow.Audit, q, args...)
}

// ReadChain reads the audit_chain row, FOR UPDATE when forUpdate. A missing
// row reads as the genesis: verification then says where the chain breaks.
func ReadChain(ctx context.Context, db DB, forUpdate bool) (store.AuditChain, error) {
	c := store.AuditChain{AnchorHash: store.AuditGenesis, HeadHash: store.AuditGenesis}
	q := `SELECT anchor_seq, anchor_hash, head_seq, head_hash, legacy_seq FROM audit_chain WHERE id = 1`
	if forUpdate {
		q += ` FOR UPDATE`
	}
	err := db.QueryRow(ctx, q).Scan(&c.AnchorSeq, &c.AnchorHash, &c.HeadSeq, &c.HeadHash, &c.LegacySeq)
	if err != nil && db.NoRows(err) {
		return c, nil
	}
	if err != nil {
		return c, db.Err(ctx, "audit chain", err)
	}
	return c, nil
}

// WriteChain stores c as the audit_chain row.
func WriteChain(ctx context.Context, db DB, c store.AuditChain) error {
	_, err := db.Exec(ctx, `INSERT INTO audit_chain (id, anchor_seq, anchor_hash, head_seq, head_hash, legacy_seq)
		VALUES (1, $1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET anchor_seq = excluded.anchor_seq, anchor_hash = excluded.anchor_hash,
			head_seq = excluded.head_seq, head_hash = excluded.head_hash, legacy_seq = excluded.legacy_seq`,
		c.AnchorSeq, c.AnchorHash, c.HeadSeq, c.HeadHash, c.LegacySeq)
	return err
}

// AppendAudit reads the chain's head (FOR UPDATE when forUpdate), seals e
// after it, inserts it and moves the head to it.
func AppendAudit(ctx context.Context, db DB, e store.AuditEntry, forUpdate bool) error {
	what := fmt.Sprintf("add audit %s %s", e.Action, e.Object)
	head, err := ReadChain(ctx, db, forUpdate)
	if err != nil {
		return err
	}
	e, err = store.SealAudit(head, e)
	if err != nil {
		return errorf(db, what, "%w", err)
	}
	at, err := sqlrow.EncodeTime(e.Time)
	if err != nil {
		return errorf(db, what, "%w", err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO audit (`+auditCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		e.Seq, at, e.Actor, e.Role, e.Action, e.Object, e.Detail, e.Outcome, e.RequestID, e.PrevHash, e.Hash); err != nil {
		return db.Err(ctx, what, err)
	}
	head.HeadSeq, head.HeadHash = e.Seq, e.Hash
	if err := WriteChain(ctx, db, head); err != nil {
		return db.Err(ctx, what, err)
	}
	return nil
}

// PurgeAudit removes the chain's prefix up to the last entry older than
// before and makes that entry the anchor. It runs in the store's
// transaction, which it does not commit; the chain's row is read first
// (FOR UPDATE when forUpdate).
func PurgeAudit(ctx context.Context, db DB, before time.Time, forUpdate bool) (int64, error) {
	const what = "purge audit"
	at, err := sqlrow.EncodeTime(before.Truncate(time.Microsecond))
	if err != nil {
		return 0, errorf(db, what, "%w", err)
	}
	c, err := ReadChain(ctx, db, forUpdate)
	if err != nil {
		return 0, err
	}
	var cut *int64
	if err := db.QueryRow(ctx, `SELECT max(seq) FROM audit WHERE time < $1`, at).Scan(&cut); err != nil {
		return 0, db.Err(ctx, what, err)
	}
	if cut == nil {
		return 0, nil
	}
	if err := db.QueryRow(ctx, `SELECT hash FROM audit WHERE seq = $1`, *cut).Scan(&c.AnchorHash); err != nil {
		return 0, db.Err(ctx, what, err)
	}
	c.AnchorSeq = *cut
	n, err := db.Exec(ctx, `DELETE FROM audit WHERE seq <= $1`, *cut)
	if err != nil {
		return 0, db.Err(ctx, what, err)
	}
	if err := WriteChain(ctx, db, c); err != nil {
		return 0, db.Err(ctx, what, err)
	}
	return n, nil
}
