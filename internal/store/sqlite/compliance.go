package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/uptrust/uptrust/internal/store"
)

// This file holds what the compliance report needs beyond the published
// state: rollout completions, attestations and market declarations
// (schema migration 3).

const (
	attestationCols = `product, item, url, note, attested_by, time, withdrawn`
	marketCols      = `product, placed_on, expected_use_months, justification, recorded`
)

// RolloutCompletions returns the completions of product's rollouts ordered
// by the time they were reached, then version.
func (r reader) RolloutCompletions(ctx context.Context, product string) ([]store.RolloutCompletion, error) {
	return queryAll(ctx, r.q, "rollout completions of "+product,
		`SELECT product, version, reached FROM rollout_completions WHERE product = ? ORDER BY reached, version`, scanCompletion, product)
}

// Attestations returns product's attestations ordered by item, time and
// insertion, withdrawn ones included.
func (r reader) Attestations(ctx context.Context, product string) ([]store.Attestation, error) {
	return queryAll(ctx, r.q, "attestations of "+product,
		`SELECT `+attestationCols+` FROM attestations WHERE product = ? ORDER BY item, time, rowid`, scanAttestation, product)
}

// Market returns product's market declaration, or an error wrapping
// store.ErrNotFound.
func (r reader) Market(ctx context.Context, product string) (store.Market, error) {
	row := r.q.QueryRowContext(ctx, `SELECT `+marketCols+` FROM markets WHERE product = ?`, product)
	return one(ctx, row, "market declaration of "+product, scanMarket)
}

// CompleteRollout records c unless the release has a completion already.
func (t *txn) CompleteRollout(ctx context.Context, c store.RolloutCompletion) error {
	what := fmt.Sprintf("complete rollout %s %s", c.Product, c.Version)
	reached, err := encodeTime(c.Reached)
	if err != nil {
		return fmt.Errorf("store/sqlite: %s: %w", what, err)
	}
	_, err = t.q.ExecContext(ctx, `INSERT INTO rollout_completions (product, version, reached) VALUES (?, ?, ?)
		ON CONFLICT (product, version) DO NOTHING`, c.Product, c.Version, reached)
	if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
		return fmt.Errorf("store/sqlite: %s: release: %w", what, store.ErrNotFound)
	}
	if err != nil {
		return dbErr(ctx, what, err)
	}
	return nil
}

// AddAttestation inserts a standing attestation.
func (t *txn) AddAttestation(ctx context.Context, a store.Attestation) error {
	what := fmt.Sprintf("add attestation %s %s", a.Product, a.Item)
	switch {
	case a.Item == "":
		return fmt.Errorf("store/sqlite: %s: empty item", what)
	case a.URL == "":
		return fmt.Errorf("store/sqlite: %s: empty url", what)
	case a.Note == "":
		return fmt.Errorf("store/sqlite: %s: empty note", what)
	case !a.Withdrawn.IsZero():
		return fmt.Errorf("store/sqlite: %s: a new attestation cannot be withdrawn", what)
	}
	at, err := encodeTime(a.Time)
	if err != nil {
		return fmt.Errorf("store/sqlite: %s: %w", what, err)
	}
	_, err = t.q.ExecContext(ctx, `INSERT INTO attestations (`+attestationCols+`) VALUES (?, ?, ?, ?, ?, ?, '')`,
		a.Product, a.Item, a.URL, a.Note, a.By, at)
	if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
		return fmt.Errorf("store/sqlite: %s: product %s: %w", what, a.Product, store.ErrNotFound)
	}
	if err != nil {
		return dbErr(ctx, what, err)
	}
	return nil
}

// WithdrawAttestations marks the standing attestations of (product, item)
// withdrawn at at.
func (t *txn) WithdrawAttestations(ctx context.Context, product, item string, at time.Time) (int64, error) {
	what := fmt.Sprintf("withdraw attestations %s %s", product, item)
	when, err := encodeTime(at)
	if err != nil {
		return 0, fmt.Errorf("store/sqlite: %s: %w", what, err)
	}
	res, err := t.q.ExecContext(ctx, `UPDATE attestations SET withdrawn = ? WHERE product = ? AND item = ? AND withdrawn = ''`,
		when, product, item)
	if err != nil {
		return 0, dbErr(ctx, what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, dbErr(ctx, what, err)
	}
	return n, nil
}

// PutMarket creates or replaces product's market declaration.
func (t *txn) PutMarket(ctx context.Context, m store.Market) error {
	what := "put market declaration of " + m.Product
	if m.ExpectedUseMonths <= 0 {
		return fmt.Errorf("store/sqlite: %s: expected use of %d months, want a positive number", what, m.ExpectedUseMonths)
	}
	placed, err1 := encodeDay(m.PlacedOn)
	recorded, err2 := encodeTime(m.Recorded)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("store/sqlite: %s: %w", what, err)
	}
	_, err := t.q.ExecContext(ctx, `INSERT INTO markets (`+marketCols+`) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (product) DO UPDATE SET placed_on = excluded.placed_on,
			expected_use_months = excluded.expected_use_months, justification = excluded.justification,
			recorded = excluded.recorded`,
		m.Product, placed, m.ExpectedUseMonths, m.Justification, recorded)
	if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
		return fmt.Errorf("store/sqlite: %s: product %s: %w", what, m.Product, store.ErrNotFound)
	}
	if err != nil {
		return dbErr(ctx, what, err)
	}
	return nil
}
