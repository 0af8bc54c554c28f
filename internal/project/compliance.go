package project

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/store"
)

// What the compliance report needs from the manufacturer beyond the
// published state: attestations of facts outside uptrust, and the market
// declaration the support period is measured from. Which provisions can be
// attested is package compliance's business; this file stores what it is
// given, checks its form and records each change in the audit log.

// AttestSpec is one attestation: the evidence for Item of Product is
// published at URL, and Note says what it shows. By names who attests, as
// the manufacturer chooses (a role or team is enough); it may be empty.
type AttestSpec struct {
	Product, Item, URL, Note, By string
}

// Attest records an attestation. The product must exist, the URL must be an
// absolute http or https URL and the note must not be blank. An earlier
// attestation of the same item stays on record; the report shows the
// newest standing one.
func (p *Project) Attest(ctx context.Context, s AttestSpec) (store.Attestation, error) {
	if err := p.needProduct(ctx, s.Product); err != nil {
		return store.Attestation{}, err
	}
	if err := CheckAttestSpec(s); err != nil {
		return store.Attestation{}, err
	}
	note := strings.TrimSpace(s.Note)
	now := p.Clock.Now().UTC()
	a := store.Attestation{Product: s.Product, Item: s.Item, URL: s.URL, Note: note, By: strings.TrimSpace(s.By), Time: now}
	return a, p.Store.Update(ctx, func(tx store.Tx) error {
		if err := tx.AddAttestation(ctx, a); err != nil {
			return err
		}
		// Not By: it may name a person.
		return audit(ctx, tx, now, ActionAttest, s.Product+"/"+s.Item, "url "+s.URL)
	})
}

// CheckAttestSpec checks the form of s as Attest does, without the store:
// a non-empty item and note, an absolute http or https URL.
func CheckAttestSpec(s AttestSpec) error {
	if strings.TrimSpace(s.Item) == "" {
		return errors.New("project: attest: empty item")
	}
	if err := checkURL(s.URL); err != nil {
		return err
	}
	if strings.TrimSpace(s.Note) == "" {
		return errors.New("project: attest: --note is empty: say what the evidence at --url shows")
	}
	return nil
}

// checkURL accepts absolute http and https URLs with a host.
func checkURL(s string) error {
	if s == "" {
		return errors.New("project: attest: --url is required: where the evidence is published")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("project: attest: --url %q: want an absolute http or https URL, such as https://example.com/security", s)
	}
	return nil
}

// WithdrawAttestation withdraws the standing attestations of a product's
// item; they stay on record. It fails when none stands.
func (p *Project) WithdrawAttestation(ctx context.Context, product, item string) (int64, error) {
	if err := p.needProduct(ctx, product); err != nil {
		return 0, err
	}
	now := p.Clock.Now().UTC()
	var n int64
	err := p.Store.Update(ctx, func(tx store.Tx) error {
		var err error
		if n, err = tx.WithdrawAttestations(ctx, product, item, now); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("project: %s has %w of %s", product, ErrNoStanding, item)
		}
		return audit(ctx, tx, now, ActionWithdraw, product+"/"+item, fmt.Sprintf("%d withdrawn", n))
	})
	return n, err
}

// ErrNoStanding is returned by WithdrawAttestation when the item has no
// standing attestation.
var ErrNoStanding = errors.New("no standing attestation")

// Attestations returns a product's attestations, withdrawn ones included,
// by item and time.
func (p *Project) Attestations(ctx context.Context, product string) ([]store.Attestation, error) {
	if err := p.needProduct(ctx, product); err != nil {
		return nil, err
	}
	return p.Store.Attestations(ctx, product)
}

// CompletionsFromAudit replays the audit log's rollout entries of product
// and returns, per release, the first time its rollout stood at 100 % and
// not halted, oldest first. It recovers what the rollout_completions table
// did not record: rollouts completed before it existed and replaced since.
// Security-only builds offered next to a feature release are not named in
// the log and are not recovered; entries the audit retention purged are
// lost.
func (p *Project) CompletionsFromAudit(ctx context.Context, product string) ([]store.RolloutCompletion, error) {
	entries, err := p.Store.Audit(ctx)
	if err != nil {
		return nil, err
	}
	var (
		version string
		percent = -1
		halted  bool
		seen    = map[string]bool{}
		out     []store.RolloutCompletion
	)
	for _, e := range entries {
		prod, ver, ok := strings.Cut(e.Object, "/")
		if !ok || prod != product {
			continue
		}
		switch e.Action {
		case ActionRolloutStart:
			version, percent, halted = ver, -1, false
			if _, err := fmt.Sscanf(e.Detail, "percent %d", &percent); err != nil {
				percent = -1
			}
		case ActionRolloutChange:
			if ver != version {
				version, percent, halted = ver, -1, false
			}
			for _, part := range strings.Split(e.Detail, "; ") {
				var from, to int
				var h bool
				switch {
				case part == "halted":
					halted = true
				case part == "resumed":
					halted = false
				case strings.HasPrefix(part, "percent "):
					if _, err := fmt.Sscanf(part, "percent %d -> %d", &from, &to); err == nil {
						percent = to
					}
				case strings.HasPrefix(part, "re-published unchanged"):
					if _, err := fmt.Sscanf(part, "re-published unchanged (percent %d, halted %t)", &to, &h); err == nil {
						percent, halted = to, h
					}
				}
			}
		default:
			continue
		}
		if percent == 100 && !halted && !seen[version] {
			seen[version] = true
			out = append(out, store.RolloutCompletion{Product: product, Version: version, Reached: e.Time})
		}
	}
	return out, nil
}

// MarketSpec is the manufacturer's declaration about placing a product on
// the market. PlacedOn is YYYY-MM-DD; ExpectedUse is how long users are
// expected to use it ("7y", "18m", "5y6m"); Justification says why, when
// the support period is shorter than five years.
type MarketSpec struct {
	Product, PlacedOn, ExpectedUse, Justification string
}

// DeclareMarket records (or replaces) a product's market declaration.
func (p *Project) DeclareMarket(ctx context.Context, s MarketSpec) (store.Market, error) {
	if err := p.needProduct(ctx, s.Product); err != nil {
		return store.Market{}, err
	}
	placed, err := release.ParseDate(s.PlacedOn)
	if err != nil {
		return store.Market{}, fmt.Errorf("project: --placed-on: %w", err)
	}
	months, err := ParseUse(s.ExpectedUse)
	if err != nil {
		return store.Market{}, fmt.Errorf("project: --expected-use: %w", err)
	}
	now := p.Clock.Now().UTC()
	m := store.Market{Product: s.Product, PlacedOn: placed, ExpectedUseMonths: months, Justification: strings.TrimSpace(s.Justification), Recorded: now}
	return m, p.Store.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutMarket(ctx, m); err != nil {
			return err
		}
		return audit(ctx, tx, now, ActionMarket, s.Product, fmt.Sprintf("placed on %s; expected use %s", s.PlacedOn, FormatUse(months)))
	})
}

var useRE = regexp.MustCompile(`^(?:(\d+)y)?(?:(\d+)m)?$`)

// maxUseMonths bounds an expected time in use: a century.
const maxUseMonths = 1200

// ParseUse reads a time in use as years and months: "7y", "18m", "5y6m".
// It must be positive and at most a hundred years.
func ParseUse(s string) (int, error) {
	m := useRE.FindStringSubmatch(strings.TrimSpace(s))
	if s == "" || m == nil || (m[1] == "" && m[2] == "") {
		return 0, fmt.Errorf("time in use %q: want years and months such as 7y, 18m or 5y6m", s)
	}
	y, _ := strconv.Atoi("0" + m[1])
	mo, _ := strconv.Atoi("0" + m[2])
	if y > maxUseMonths/12 || mo > maxUseMonths {
		return 0, fmt.Errorf("time in use %q: more than %d years", s, maxUseMonths/12)
	}
	total := y*12 + mo
	switch {
	case total <= 0:
		return 0, fmt.Errorf("time in use %q: must be positive", s)
	case total > maxUseMonths:
		return 0, fmt.Errorf("time in use %q: more than %d years", s, maxUseMonths/12)
	}
	return total, nil
}

// FormatUse writes months as ParseUse reads them: "7y", "18m" → "1y6m".
func FormatUse(months int) string {
	y, m := months/12, months%12
	switch {
	case y == 0:
		return fmt.Sprintf("%dm", m)
	case m == 0:
		return fmt.Sprintf("%dy", y)
	}
	return fmt.Sprintf("%dy%dm", y, m)
}

// Market returns a product's market declaration, or an error wrapping
// store.ErrNotFound when none was made.
func (p *Project) Market(ctx context.Context, product string) (store.Market, error) {
	return p.Store.Market(ctx, product)
}

// needProduct fails, wrapping store.ErrNotFound, when product does not exist.
func (p *Project) needProduct(ctx context.Context, product string) error {
	if _, err := p.Store.Product(ctx, product); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("project: no product %q: %w", product, store.ErrNotFound)
		}
		return err
	}
	return nil
}
