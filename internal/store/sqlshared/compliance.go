package sqlshared

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqlrow"
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
func RolloutCompletions(ctx context.Context, db DB, product string) ([]store.RolloutCompletion, error) {
	return sqlrow.All(ctx, db, "rollout completions of "+product, sqlrow.Completion,
		`SELECT product, version, reached FROM rollout_completions WHERE product = $1 ORDER BY reached, version`, product)
}

// Attestations returns product's attestations ordered by item, time and
// insertion, withdrawn ones included.
func Attestations(ctx context.Context, db DB, product string) ([]store.Attestation, error) {
	return sqlrow.All(ctx, db, "attestations of "+product, sqlrow.Attestation,
		`SELECT `+attestationCols+` FROM attestations WHERE product = $1 ORDER BY item, time, `+db.InsertionOrder(), product)
}

// Market returns product's market declaration, or an error wrapping
// store.ErrNotFound.
func Market(ctx context.Context, db DB, product string) (store.Market, error) {
	return sqlrow.One(ctx, db, "market declaration of "+product, sqlrow.Market,
		`SELECT `+marketCols+` FROM markets WHERE product = $1`, product)
}

// CompleteRollout records c unless the release has a completion already.
func CompleteRollout(ctx context.Context, db DB, c store.RolloutCompletion) error {
	what := fmt.Sprintf("complete rollout %s %s", c.Product, c.Version)
	reached, err := sqlrow.EncodeTime(c.Reached)
	if err != nil {
		return errorf(db, what, "%w", err)
	}
	_, err = db.Exec(ctx, `INSERT INTO rollout_completions (product, version, reached) VALUES ($1, $2, $3)
		ON CONFLICT (product, version) DO NOTHING`, c.Product, c.Version, reached)
	if err != nil && db.ForeignKey(err) {
		return errorf(db, what, "release: %w", store.ErrNotFound)
	}
	if err != nil {
		return db.Err(ctx, what, err)
	}
	return nil
}

// AddAttestation inserts a standing attestation.
func AddAttestation(ctx context.Context, db DB, a store.Attestation) error {
	what := fmt.Sprintf("add attestation %s %s", a.Product, a.Item)
	switch {
	case a.Item == "":
		return errorf(db, what, "empty item")
	case a.URL == "":
		return errorf(db, what, "empty url")
	case a.Note == "":
		return errorf(db, what, "empty note")
	case !a.Withdrawn.IsZero():
		return errorf(db, what, "a new attestation cannot be withdrawn")
	}
	at, err := sqlrow.EncodeTime(a.Time)
	if err != nil {
		return errorf(db, what, "%w", err)
	}
	_, err = db.Exec(ctx, `INSERT INTO attestations (`+attestationCols+`) VALUES ($1, $2, $3, $4, $5, $6, '')`,
		a.Product, a.Item, a.URL, a.Note, a.By, at)
	if err != nil && db.ForeignKey(err) {
		return errorf(db, what, "product %s: %w", a.Product, store.ErrNotFound)
	}
	if err != nil {
		return db.Err(ctx, what, err)
	}
	return nil
}

// WithdrawAttestations marks the standing attestations of (product, item)
// withdrawn at at.
func WithdrawAttestations(ctx context.Context, db DB, product, item string, at time.Time) (int64, error) {
	what := fmt.Sprintf("withdraw attestations %s %s", product, item)
	when, err := sqlrow.EncodeTime(at)
	if err != nil {
		return 0, errorf(db, what, "%w", err)
	}
	n, err := db.Exec(ctx, `UPDATE attestations SET withdrawn = $1 WHERE product = $2 AND item = $3 AND withdrawn = ''`,
		when, product, item)
	if err != nil {
		return 0, db.Err(ctx, what, err)
	}
	return n, nil
}

// PutMarket creates or replaces product's market declaration.
func PutMarket(ctx context.Context, db DB, m store.Market) error {
	what := "put market declaration of " + m.Product
	if m.ExpectedUseMonths <= 0 {
		return errorf(db, what, "expected use of %d months, want a positive number", m.ExpectedUseMonths)
	}
	placed, err1 := sqlrow.EncodeDay(m.PlacedOn)
	recorded, err2 := sqlrow.EncodeTime(m.Recorded)
	if err := errors.Join(err1, err2); err != nil {
		return errorf(db, what, "%w", err)
	}
	_, err := db.Exec(ctx, `INSERT INTO markets (`+marketCols+`) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (product) DO UPDATE SET placed_on = excluded.placed_on,
			expected_use_months = excluded.expected_use_months, justification = excluded.justification,
			recorded = excluded.recorded`,
		m.Product, placed, m.ExpectedUseMonths, m.Justification, recorded)
	if err != nil && db.ForeignKey(err) {
		return errorf(db, what, "product %s: %w", m.Product, store.ErrNotFound)
	}
	if err != nil {
		return db.Err(ctx, what, err)
	}
	return nil
}
