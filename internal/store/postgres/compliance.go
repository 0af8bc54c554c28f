package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

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
		`SELECT product, version, reached FROM rollout_completions WHERE product = $1 ORDER BY reached, version`, scanCompletion, product)
}

// Attestations returns product's attestations ordered by item, time and
// insertion, withdrawn ones included.
func (r reader) Attestations(ctx context.Context, product string) ([]store.Attestation, error) {
	return queryAll(ctx, r.q, "attestations of "+product,
		`SELECT `+attestationCols+` FROM attestations WHERE product = $1 ORDER BY item, time, id`, scanAttestation, product)
}

// Market returns product's market declaration, or an error wrapping
// store.ErrNotFound.
func (r reader) Market(ctx context.Context, product string) (store.Market, error) {
	row := r.q.QueryRow(ctx, `SELECT `+marketCols+` FROM markets WHERE product = $1`, product)
	return one(ctx, row, "market declaration of "+product, scanMarket)
}

// CompleteRollout records c unless the release has a completion already.
func (t *txn) CompleteRollout(ctx context.Context, c store.RolloutCompletion) error {
	what := fmt.Sprintf("complete rollout %s %s", c.Product, c.Version)
	reached, err := encodeTime(c.Reached)
	if err != nil {
		return fmt.Errorf("store/postgres: %s: %w", what, err)
	}
	_, err = t.exec(ctx, `INSERT INTO rollout_completions (product, version, reached) VALUES ($1, $2, $3)
		ON CONFLICT (product, version) DO NOTHING`, c.Product, c.Version, reached)
	if pgCode(err) == foreignKeyViolation {
		return fmt.Errorf("store/postgres: %s: release: %w", what, store.ErrNotFound)
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
		return fmt.Errorf("store/postgres: %s: empty item", what)
	case a.URL == "":
		return fmt.Errorf("store/postgres: %s: empty url", what)
	case a.Note == "":
		return fmt.Errorf("store/postgres: %s: empty note", what)
	case !a.Withdrawn.IsZero():
		return fmt.Errorf("store/postgres: %s: a new attestation cannot be withdrawn", what)
	}
	at, err := encodeTime(a.Time)
	if err != nil {
		return fmt.Errorf("store/postgres: %s: %w", what, err)
	}
	_, err = t.exec(ctx, `INSERT INTO attestations (`+attestationCols+`) VALUES ($1, $2, $3, $4, $5, $6, '')`,
		a.Product, a.Item, a.URL, a.Note, a.By, at)
	if pgCode(err) == foreignKeyViolation {
		return fmt.Errorf("store/postgres: %s: product %s: %w", what, a.Product, store.ErrNotFound)
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
		return 0, fmt.Errorf("store/postgres: %s: %w", what, err)
	}
	tag, err := t.exec(ctx, `UPDATE attestations SET withdrawn = $1 WHERE product = $2 AND item = $3 AND withdrawn = ''`,
		when, product, item)
	if err != nil {
		return 0, dbErr(ctx, what, err)
	}
	return tag.RowsAffected(), nil
}

// PutMarket creates or replaces product's market declaration.
func (t *txn) PutMarket(ctx context.Context, m store.Market) error {
	what := "put market declaration of " + m.Product
	if m.ExpectedUseMonths <= 0 {
		return fmt.Errorf("store/postgres: %s: expected use of %d months, want a positive number", what, m.ExpectedUseMonths)
	}
	placed, err1 := encodeDay(m.PlacedOn)
	recorded, err2 := encodeTime(m.Recorded)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("store/postgres: %s: %w", what, err)
	}
	_, err := t.exec(ctx, `INSERT INTO markets (`+marketCols+`) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (product) DO UPDATE SET placed_on = excluded.placed_on,
			expected_use_months = excluded.expected_use_months, justification = excluded.justification,
			recorded = excluded.recorded`,
		m.Product, placed, m.ExpectedUseMonths, m.Justification, recorded)
	if pgCode(err) == foreignKeyViolation {
		return fmt.Errorf("store/postgres: %s: product %s: %w", what, m.Product, store.ErrNotFound)
	}
	if err != nil {
		return dbErr(ctx, what, err)
	}
	return nil
}
