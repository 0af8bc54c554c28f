package sqlite

import (
	"context"
	"time"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqlshared"
)

// What the compliance report needs beyond the published state (rollout
// completions, attestations and market declarations, schema migration 3)
// is in internal/store/sqlshared.

// RolloutCompletions returns the completions of product's rollouts ordered
// by the time they were reached, then version.
func (r reader) RolloutCompletions(ctx context.Context, product string) ([]store.RolloutCompletion, error) {
	return sqlshared.RolloutCompletions(ctx, db{r.q}, product)
}

// Attestations returns product's attestations ordered by item, time and
// insertion, withdrawn ones included.
func (r reader) Attestations(ctx context.Context, product string) ([]store.Attestation, error) {
	return sqlshared.Attestations(ctx, db{r.q}, product)
}

// Market returns product's market declaration, or an error wrapping
// store.ErrNotFound.
func (r reader) Market(ctx context.Context, product string) (store.Market, error) {
	return sqlshared.Market(ctx, db{r.q}, product)
}

// CompleteRollout records c unless the release has a completion already.
func (t *txn) CompleteRollout(ctx context.Context, c store.RolloutCompletion) error {
	return sqlshared.CompleteRollout(ctx, db{t.q}, c)
}

// AddAttestation inserts a standing attestation.
func (t *txn) AddAttestation(ctx context.Context, a store.Attestation) error {
	return sqlshared.AddAttestation(ctx, db{t.q}, a)
}

// WithdrawAttestations marks the standing attestations of (product, item)
// withdrawn at at.
func (t *txn) WithdrawAttestations(ctx context.Context, product, item string, at time.Time) (int64, error) {
	return sqlshared.WithdrawAttestations(ctx, db{t.q}, product, item, at)
}

// PutMarket creates or replaces product's market declaration.
func (t *txn) PutMarket(ctx context.Context, m store.Market) error {
	return sqlshared.PutMarket(ctx, db{t.q}, m)
}
