package project_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// TestRolloutCompletion: the first time a rollout reaches 100 % and is not
// halted is recorded per release, and later changes do not move it.
func TestRolloutCompletion(t *testing.T) {
	clk := clock.NewFake(t0)
	p := initDev(t, clk)
	ctx := t.Context()
	addProduct(t, p, thermostat())
	addRelease(t, p, releaseSpec("thermostat", "1.1.0", 1, "1.1.0"))
	completions := func() []store.RolloutCompletion {
		t.Helper()
		cs, err := p.Store.RolloutCompletions(ctx, "thermostat")
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	if _, err := p.StartRollout(ctx, "thermostat", "1.1.0", 10); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if _, err := p.ChangeRollout(ctx, "thermostat", func(r *Rollout) { r.Percent, r.Halted = 100, true }); err != nil {
		t.Fatal(err)
	}
	if cs := completions(); len(cs) != 0 {
		t.Fatalf("a halted rollout at 100%% counts as complete: %+v", cs)
	}
	clk.Advance(time.Hour)
	if _, err := p.ChangeRollout(ctx, "thermostat", func(r *Rollout) { r.Halted = false }); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if _, err := p.ChangeRollout(ctx, "thermostat", func(r *Rollout) { r.Percent = 50 }); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ChangeRollout(ctx, "thermostat", func(r *Rollout) { r.Percent = 100 }); err != nil {
		t.Fatal(err)
	}
	cs := completions()
	if len(cs) != 1 || cs[0].Version != "1.1.0" || !cs[0].Reached.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("completions %+v, want 1.1.0 at %v", cs, t0.Add(2*time.Hour))
	}
}

// Rollout is store.Rollout, named for the change functions above.
type Rollout = store.Rollout

func TestAttest(t *testing.T) {
	clk := clock.NewFake(t0)
	p := initDev(t, clk)
	ctx := t.Context()
	addProduct(t, p, thermostat())
	spec := project.AttestSpec{Product: "thermostat", Item: "CRA-II-5", URL: "https://example.com/cvd", Note: " policy v1 ", By: "security team"}
	a, err := p.Attest(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if a.Note != "policy v1" || !a.Time.Equal(t0) || a.By != "security team" {
		t.Errorf("attestation %+v", a)
	}
	for name, c := range map[string]struct {
		spec project.AttestSpec
		want string
	}{
		"no url":          {project.AttestSpec{Product: "thermostat", Item: "CRA-II-5", Note: "n"}, "--url is required"},
		"relative url":    {project.AttestSpec{Product: "thermostat", Item: "CRA-II-5", URL: "example.com/cvd", Note: "n"}, `--url "example.com/cvd": want an absolute http or https URL`},
		"ftp url":         {project.AttestSpec{Product: "thermostat", Item: "CRA-II-5", URL: "ftp://example.com/cvd", Note: "n"}, "want an absolute http or https URL"},
		"blank note":      {project.AttestSpec{Product: "thermostat", Item: "CRA-II-5", URL: "https://example.com", Note: "  "}, "--note is empty"},
		"unknown product": {project.AttestSpec{Product: "toaster", Item: "CRA-II-5", URL: "https://example.com", Note: "n"}, `no product "toaster"`},
	} {
		if _, err := p.Attest(ctx, c.spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, c.want)
		}
	}
	clk.Advance(time.Hour)
	if n, err := p.WithdrawAttestation(ctx, "thermostat", "CRA-II-5"); err != nil || n != 1 {
		t.Errorf("withdraw: %d, %v", n, err)
	}
	if _, err := p.WithdrawAttestation(ctx, "thermostat", "CRA-II-5"); err == nil || !strings.Contains(err.Error(), "no standing attestation of CRA-II-5") {
		t.Errorf("second withdraw: %v", err)
	}
	as, err := p.Attestations(ctx, "thermostat")
	if err != nil || len(as) != 1 || !as[0].Withdrawn.Equal(t0.Add(time.Hour)) {
		t.Errorf("attestations after withdrawal: %+v, %v", as, err)
	}
	log, err := p.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range log {
		actions = append(actions, e.Action)
		if strings.Contains(e.Detail, "security team") {
			t.Errorf("audit entry names who attested: %+v", e)
		}
	}
	if s := strings.Join(actions, " "); !strings.Contains(s, "compliance.attest compliance.withdraw") {
		t.Errorf("audit actions %s", s)
	}
}

func TestDeclareMarket(t *testing.T) {
	p := initDev(t, clock.NewFake(t0))
	ctx := t.Context()
	addProduct(t, p, thermostat())
	if _, err := p.Market(ctx, "thermostat"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("market before a declaration: %v", err)
	}
	m, err := p.DeclareMarket(ctx, project.MarketSpec{Product: "thermostat", PlacedOn: "2027-01-15", ExpectedUse: "7y6m"})
	if err != nil {
		t.Fatal(err)
	}
	if m.ExpectedUseMonths != 90 || m.PlacedOn.Format(time.DateOnly) != "2027-01-15" {
		t.Errorf("declaration %+v", m)
	}
	got, err := p.Market(ctx, "thermostat")
	if err != nil || got.ExpectedUseMonths != 90 {
		t.Errorf("stored declaration %+v, %v", got, err)
	}
	for name, c := range map[string]struct {
		spec project.MarketSpec
		want string
	}{
		"bad date":        {project.MarketSpec{Product: "thermostat", PlacedOn: "15.01.2027", ExpectedUse: "7y"}, `--placed-on: release: invalid date "15.01.2027"`},
		"bad use":         {project.MarketSpec{Product: "thermostat", PlacedOn: "2027-01-15", ExpectedUse: "7 years"}, `--expected-use: time in use "7 years": want years and months`},
		"zero use":        {project.MarketSpec{Product: "thermostat", PlacedOn: "2027-01-15", ExpectedUse: "0y"}, "must be positive"},
		"unknown product": {project.MarketSpec{Product: "toaster", PlacedOn: "2027-01-15", ExpectedUse: "7y"}, `no product "toaster"`},
	} {
		if _, err := p.DeclareMarket(ctx, c.spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, c.want)
		}
	}
}

func TestParseUse(t *testing.T) {
	for in, want := range map[string]int{"7y": 84, "18m": 18, "5y6m": 66, "0y3m": 3, "100y": 1200} {
		if got, err := project.ParseUse(in); err != nil || got != want {
			t.Errorf("ParseUse(%q) = %d, %v; want %d", in, got, err, want)
		}
		if in != "0y3m" && in != "18m" {
			if back := project.FormatUse(want); back != in {
				t.Errorf("FormatUse(%d) = %q, want %q", want, back, in)
			}
		}
	}
	for _, in := range []string{"", "y", "7", "-1y", "0m", "101y", "7d", "1y2y"} {
		if _, err := project.ParseUse(in); err == nil {
			t.Errorf("ParseUse(%q) accepted", in)
		}
	}
}

// TestCompletionsFromAudit replays the audit log: the first time each
// release's rollout stood at 100 % and not halted, as the rollout table
// records it.
func TestCompletionsFromAudit(t *testing.T) {
	clk := clock.NewFake(t0)
	p := initDev(t, clk)
	ctx := t.Context()
	addProduct(t, p, thermostat())
	addRelease(t, p, releaseSpec("thermostat", "1.1.0", 1, "1.1.0"))
	addRelease(t, p, releaseSpec("thermostat", "1.2.0", 2, "1.2.0"))
	addRelease(t, p, releaseSpec("thermostat", "1.3.0", 3, "1.3.0"))
	step := func(f func() error) {
		t.Helper()
		clk.Advance(time.Hour)
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	change := func(c func(*Rollout)) func() error {
		return func() error { _, err := p.ChangeRollout(ctx, "thermostat", c); return err }
	}
	start := func(v string, pct int) func() error {
		return func() error { _, err := p.StartRollout(ctx, "thermostat", v, pct); return err }
	}
	step(start("1.1.0", 100))                           // +1h: complete at once
	step(start("1.2.0", 10))                            // +2h
	step(change(func(r *Rollout) { r.Halted = true }))  // +3h
	step(change(func(r *Rollout) { r.Percent = 100 }))  // +4h: 100 % but halted
	step(change(func(r *Rollout) { r.Halted = false })) // +5h: complete
	step(change(func(r *Rollout) { r.Percent = 50 }))   // +6h
	step(change(func(r *Rollout) { r.Percent = 100 }))  // +7h: not again
	step(start("1.3.0", 40))                            // +8h: never complete
	step(change(func(r *Rollout) {}))                   // +9h: re-published unchanged
	got, err := p.CompletionsFromAudit(ctx, "thermostat")
	if err != nil {
		t.Fatal(err)
	}
	want, err := p.Store.RolloutCompletions(ctx, "thermostat")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Version != "1.1.0" || !got[0].Reached.Equal(t0.Add(time.Hour)) ||
		got[1].Version != "1.2.0" || !got[1].Reached.Equal(t0.Add(5*time.Hour)) {
		t.Errorf("from the audit log: %+v", got)
	}
	if len(want) != len(got) {
		t.Fatalf("the table has %+v, the audit log gives %+v", want, got)
	}
	for i := range want {
		if want[i].Version != got[i].Version || !want[i].Reached.Equal(got[i].Reached) {
			t.Errorf("completion %d: table %+v, audit log %+v", i, want[i], got[i])
		}
	}
}
