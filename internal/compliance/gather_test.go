package compliance_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/blob"
	"github.com/uptrust/uptrust/internal/clock"
	"github.com/uptrust/uptrust/internal/compliance"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/keys"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/store"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func product() project.ProductSpec {
	return project.ProductSpec{Name: "thermostat", Model: "Thermostat T1", Hardware: []string{"rev-a"}, SupportUntil: "2031-12-31",
		Contact: "security@example.com"}
}

func newProject(t *testing.T, dev bool, clk clock.Clock) *project.Project {
	t.Helper()
	o := project.InitOptions{Dev: dev, Options: project.Options{Clock: clk}}
	if !dev {
		o.Passphrase = func() ([]byte, error) { return []byte("correct horse battery staple"), nil }
	}
	p, err := project.Init(t.Context(), filepath.Join(t.TempDir(), "proj"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.AddProduct(t.Context(), product()); err != nil {
		t.Fatal(err)
	}
	return p
}

// evaluate gathers and evaluates the thermostat's facts.
func evaluate(t *testing.T, p *project.Project) map[string]compliance.Result {
	t.Helper()
	f, err := compliance.Gather(t.Context(), p, "thermostat")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]compliance.Result{}
	for _, r := range compliance.Evaluate(f) {
		out[r.ID] = r
	}
	return out
}

// expect checks a verdict and that the evidence or warnings mention every
// one of contains.
func expect(t *testing.T, results map[string]compliance.Result, id string, want compliance.Status, contains ...string) {
	t.Helper()
	r, ok := results[id]
	if !ok {
		t.Fatalf("no result for %s", id)
	}
	text := strings.Join(append(append([]string(nil), r.Evidence...), r.Warnings...), "\n")
	if r.Status != want {
		t.Errorf("%s: %s, want %s\n%s", id, r.Status, want, text)
	}
	for _, c := range contains {
		if !strings.Contains(text, c) {
			t.Errorf("%s: evidence does not mention %q:\n%s", id, c, text)
		}
	}
}

// productKeyID reads the product role's key id from the release
// repository's top-level targets delegation.
func productKeyID(t *testing.T, p *project.Project) string {
	t.Helper()
	md, err := repo.LoadTargets(t.Context(), p.Store, deviceapi.RepoRelease, repo.RoleTargets)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range md.Signed.Delegations.Roles {
		if r.Name == repo.ProductRole("thermostat") && len(r.KeyIDs) == 1 {
			return r.KeyIDs[0]
		}
	}
	t.Fatalf("no delegation for products/thermostat in %+v", md.Signed.Delegations)
	return ""
}

func TestDevProject(t *testing.T) {
	clk := clock.NewFake(t0)
	p := newProject(t, true, clk)
	res := evaluate(t, p)
	expect(t, res, "5.3-7", compliance.NotMet, "development project", "offline keys stored unencrypted:", "product-thermostat.key",
		"release root v1: threshold 1 of 1", "release root threshold 1")
	expect(t, res, "5.3-13", compliance.Met, "until 2031-12-31", "signed by products/thermostat key "+productKeyID(t, p)[:12])
	expect(t, res, "5.3-16", compliance.NotMet, `"Thermostat T1"`, "not attested")
	expect(t, res, "5.3-14", compliance.NotApplicable, "do not apply")
	expect(t, res, "5.3-1", compliance.NotYet, "no release of thermostat is published")
	expect(t, res, "5.3-8", compliance.NotYet, "no security release of thermostat is published")
	expect(t, res, "CRA-13-9", compliance.NotYet, "nothing to keep available yet")
	expect(t, res, "5.3-10", compliance.Met, "first expiry: release timestamp", "(in 24h00m)")
	expect(t, res, "5.3-9", compliance.Met, "release repository: root v1, targets v2, products/thermostat v1, snapshot v2, timestamp v2 verified")
	expect(t, res, "CRA-13-8", compliance.NotMet, "no placing on the market is declared")
	expect(t, res, "PSTI-2", compliance.NotMet, "security@example.com", "not attested")

	// The manufacturer declares the market and attests the label.
	ctx := t.Context()
	if _, err := p.DeclareMarket(ctx, project.MarketSpec{Product: "thermostat", PlacedOn: "2027-01-01", ExpectedUse: "4y"}); err != nil {
		t.Fatal(err)
	}
	if _, err := compliance.Attest(ctx, p, project.AttestSpec{Product: "thermostat", Item: "5.3-16", URL: "https://example.com/label.jpg",
		Note: "model T1 printed on the rating plate", By: "product team"}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if _, err := compliance.Attest(ctx, p, project.AttestSpec{Product: "thermostat", Item: "5.3-16", URL: "https://example.com/label-v2.jpg",
		Note: "model T1 on the rating plate and in the app"}); err != nil {
		t.Fatal(err)
	}
	res = evaluate(t, p)
	expect(t, res, "CRA-13-8", compliance.Met, "placed on the market 2027-01-01 and expected in use for 4 years 0 months",
		"support from 2027-01-01 until 2031-12-31: 5 years 0 months")
	expect(t, res, "5.3-16", compliance.Attested, "attested by an unnamed attester on 2026-11-25 11:00 UTC: model T1 on the rating plate and in the app (https://example.com/label-v2.jpg)")
	if _, err := p.WithdrawAttestation(ctx, "thermostat", "5.3-16"); err != nil {
		t.Fatal(err)
	}
	expect(t, evaluate(t, p), "5.3-16", compliance.NotMet, "not attested")

	_, err := compliance.Attest(ctx, p, project.AttestSpec{Product: "thermostat", Item: "5.3-7", URL: "https://example.com", Note: "n"})
	if err == nil || !strings.Contains(err.Error(), "5.3-7 is judged from the project alone and cannot be attested") {
		t.Errorf("attesting 5.3-7: %v", err)
	}
}

func TestProductionProject(t *testing.T) {
	p := newProject(t, false, clock.NewFake(t0))
	files, err := filepath.Glob(filepath.Join(p.Dir, "keys", "offline", "*.key"))
	if err != nil || len(files) == 0 {
		t.Fatalf("offline key files: %v, %v", files, err)
	}
	res := evaluate(t, p)
	expect(t, res, "5.3-7", compliance.Met, "release root v1: threshold 2 of 3", "fleet root v1: threshold 2 of 3", "ed25519",
		"all "+strconv.Itoa(len(files))+" offline key files in keys/offline are encrypted")
	expect(t, res, "5.3-13", compliance.Met, "until 2031-12-31", "signed by products/thermostat key "+productKeyID(t, p)[:12])

	// Offline keys moved off the machine, as recommended: nothing to inspect.
	if err := os.RemoveAll(filepath.Join(p.Dir, "keys", "offline")); err != nil {
		t.Fatal(err)
	}
	expect(t, evaluate(t, p), "5.3-7", compliance.Met, "no offline key files on this machine")
}

func TestSecurityReleaseRollout(t *testing.T) {
	clk := clock.NewFake(t0)
	p := newProject(t, true, clk)
	ctx := t.Context()
	if _, err := p.AddRelease(ctx, project.ReleaseSpec{Product: "thermostat", Version: "1.0.0", Payload: strings.NewReader("image 1"),
		Kind: release.KindFeature, SecurityVersion: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.StartRollout(ctx, "thermostat", "1.0.0", 100); err != nil {
		t.Fatal(err)
	}
	expect(t, evaluate(t, p), "5.3-1", compliance.Met, "1 of 1 releases are full rootfs images")
	clk.Advance(time.Hour)
	if _, err := p.AddRelease(ctx, project.ReleaseSpec{Product: "thermostat", Version: "1.0.1", Payload: strings.NewReader("image 2"),
		Kind: release.KindSecurity, SecurityVersion: 2, Advisories: []release.Advisory{{ID: "CVE-2026-0001", Summary: "overflow"}}}); err != nil {
		t.Fatal(err)
	}
	res := evaluate(t, p)
	expect(t, res, "5.3-8", compliance.NotYet, "security release 1.0.1 (security version 2), published with its advisories 2026-11-25 11:00 UTC",
		"not offered to any device: the fleet repository offers 1.0.0 at 100%")
	expect(t, res, "CRA-II-8", compliance.NotYet, "carries signed advisories CVE-2026-0001")
	expect(t, res, "CRA-II-4", compliance.Met, "carries signed advisories CVE-2026-0001")
	expect(t, res, "CRA-13-9", compliance.Met, "security release 1.0.1: payload in the blob store and listed in products/thermostat, to be kept available until at least 2036-11-25")
	expect(t, res, "5.3-11", res["5.3-11"].Status, "security release 1.0.1 carries signed advisories CVE-2026-0001") // the verdict depends on the agent
	expect(t, res, "5.3-9", compliance.Met, "2 of 2 releases signed in products/thermostat")

	clk.Advance(2 * time.Hour)
	if _, err := p.StartRollout(ctx, "thermostat", "1.0.1", 20); err != nil {
		t.Fatal(err)
	}
	expect(t, evaluate(t, p), "5.3-8", compliance.NotYet, "offered as 1.0.1 to 20% of devices since 2026-11-25 13:00 UTC",
		"no rollout of a security release of thermostat has reached every device yet")

	clk.Advance(24 * time.Hour)
	if _, err := p.ChangeRollout(ctx, "thermostat", func(r *store.Rollout) { r.Percent = 100 }); err != nil {
		t.Fatal(err)
	}
	res = evaluate(t, p)
	expect(t, res, "5.3-8", compliance.Met, "reached 100% of devices at 2026-11-26 13:00 UTC, 26h00m after publication")
	expect(t, res, "CRA-II-2", compliance.Met, "26h00m after publication")

	// Halting later does not change when it reached every device.
	if _, err := p.ChangeRollout(ctx, "thermostat", func(r *store.Rollout) { r.Halted = true }); err != nil {
		t.Fatal(err)
	}
	expect(t, evaluate(t, p), "5.3-8", compliance.Met, "26h00m after publication")

	// A security release without advisories or notes is listed.
	if _, err := p.AddRelease(ctx, project.ReleaseSpec{Product: "thermostat", Version: "1.0.2", Payload: strings.NewReader("image 3"),
		Kind: release.KindSecurity, SecurityVersion: 3}); err != nil {
		t.Fatal(err)
	}
	res = evaluate(t, p)
	expect(t, res, "CRA-II-8", compliance.NotMet, "security releases without advisories or notes: 1.0.2")
	expect(t, res, "CRA-II-4", compliance.NotMet, "security releases without advisories or notes: 1.0.2")

	// Thirty days on, 1.0.2 has still not reached every device.
	clk.Advance(31 * 24 * time.Hour)
	expect(t, evaluate(t, p), "5.3-8", compliance.NotMet, "security release 1.0.2 (security version 3)", "later than 30d")

	// A payload that disappears from the blob store is no longer available.
	rel, err := p.Store.Release(ctx, "thermostat", "1.0.1")
	if err != nil {
		t.Fatal(err)
	}
	path, err := p.Blobs.(*blob.Store).Path(rel.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	expect(t, evaluate(t, p), "CRA-13-9", compliance.NotMet, "security release 1.0.1: its payload is missing from the blob store")
}

func TestExpiredTimestamp(t *testing.T) {
	clk := clock.NewFake(t0)
	p := newProject(t, true, clk)
	expect(t, evaluate(t, p), "5.3-10", compliance.Met)
	clk.Advance(25 * time.Hour)
	res := evaluate(t, p)
	expect(t, res, "5.3-10", compliance.NotMet, "release timestamp v2 expired 2026-11-26 10:00 UTC", "fleet timestamp v1 expired")
	expect(t, res, "CRA-II-7", compliance.NotMet, "expired")
	// Offline roles are valid for a year by default: within 30 days of that
	// they draw a warning.
	clk.Advance(340 * 24 * time.Hour)
	expect(t, evaluate(t, p), "5.3-10", compliance.NotMet, "offline release products/thermostat v1 expires")
}

func TestBadSignature(t *testing.T) {
	p := newProject(t, true, clock.NewFake(t0))
	ctx := t.Context()
	prev, err := p.Store.LatestMetadata(ctx, deviceapi.RepoFleet, repo.RoleTimestamp)
	if err != nil {
		t.Fatal(err)
	}
	// A timestamp signed with a key the fleet root does not list.
	ts := metadata.Timestamp(t0.Add(24 * time.Hour))
	ts.Signed.Version = prev.Version + 1
	ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metadata.MetaFile(1)}
	k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Sign(k); err != nil {
		t.Fatal(err)
	}
	body, err := ts.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Store.Update(ctx, func(tx store.Tx) error {
		return tx.PutMetadata(ctx, store.Metadata{Repo: deviceapi.RepoFleet, Role: repo.RoleTimestamp, Version: ts.Signed.Version, Body: body, Expires: ts.Signed.Expires})
	})
	if err != nil {
		t.Fatal(err)
	}
	res := evaluate(t, p)
	expect(t, res, "5.3-9", compliance.NotMet, "fleet repository: timestamp v2 does not verify against its delegator")
	expect(t, res, "5.3-10", compliance.NotMet, "timestamp v2 does not verify")
	expect(t, res, "CRA-I-2f", compliance.NotMet, "does not verify")
	expect(t, res, "5.3-13", compliance.Met)
}

// TestForgedProductRole stores a product role signed by a key the
// delegation does not list, as a stolen server could.
func TestForgedProductRole(t *testing.T) {
	p := newProject(t, true, clock.NewFake(t0))
	ctx := t.Context()
	role := repo.ProductRole("thermostat")
	md, err := repo.LoadTargets(ctx, p.Store, deviceapi.RepoRelease, role)
	if err != nil {
		t.Fatal(err)
	}
	md.Signed.Version++
	md.ClearSignatures()
	k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := md.Sign(k); err != nil {
		t.Fatal(err)
	}
	body, err := md.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Store.Update(ctx, func(tx store.Tx) error {
		return tx.PutMetadata(ctx, store.Metadata{Repo: deviceapi.RepoRelease, Role: role, Version: md.Signed.Version, Body: body, Expires: md.Signed.Expires})
	})
	if err != nil {
		t.Fatal(err)
	}
	res := evaluate(t, p)
	expect(t, res, "5.3-13", compliance.NotMet, "products/thermostat v2 carrying the declaration does not verify")
	expect(t, res, "PSTI-3", compliance.NotMet, "does not verify")
	expect(t, res, "5.3-9", compliance.NotMet, "release repository: products/thermostat v2 does not verify against its delegator")
}

func TestGatherUnknownProduct(t *testing.T) {
	p := newProject(t, true, clock.NewFake(t0))
	_, err := compliance.Gather(t.Context(), p, "toaster")
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), `compliance: product "toaster"`) {
		t.Fatalf("Gather(toaster) = %v, want a compliance error wrapping store.ErrNotFound", err)
	}
}

func TestGatherFacts(t *testing.T) {
	p := newProject(t, false, clock.NewFake(t0))
	f, err := compliance.Gather(t.Context(), p, "thermostat")
	if err != nil {
		t.Fatal(err)
	}
	if f.Dev || f.Product != "thermostat" || !f.Now.Equal(t0) || !f.ProductCreated.Equal(t0) {
		t.Errorf("facts: dev %v product %q now %v created %v", f.Dev, f.Product, f.Now, f.ProductCreated)
	}
	if f.Support == nil || f.Support.Until != "2031-12-31" || f.SupportTarget == nil || f.SupportTarget.Path != "thermostat/support.json" {
		t.Errorf("support %+v target %+v (%s)", f.Support, f.SupportTarget, f.SupportErr)
	}
	if f.Delegation == nil || f.Delegation.KeyIDs[0] != productKeyID(t, p) || f.Delegation.Paths[0] != "thermostat/*" {
		t.Errorf("delegation %+v", f.Delegation)
	}
	if len(f.Repos) != 2 {
		t.Fatalf("repos %+v", f.Repos)
	}
	for _, r := range f.Repos {
		if r.RootThreshold != 2 || len(r.RootKeyIDs) != 3 {
			t.Errorf("%s root %d-of-%d", r.Name, r.RootThreshold, len(r.RootKeyIDs))
		}
		for _, role := range r.Roles {
			if role.VerifyErr != "" {
				t.Errorf("%s %s: %s", r.Name, role.Name, role.VerifyErr)
			}
		}
	}
	if f.Agent.PollInterval <= 0 || !f.Agent.TAP4 {
		t.Errorf("agent facts %+v", f.Agent)
	}
	for _, k := range f.OfflineKeys {
		if !k.Encrypted || k.Err != "" {
			t.Errorf("offline key %+v", k)
		}
	}
}

// TestCompletionFromAudit: a rollout that completed before uptrust
// recorded completions (here, only its audit entries exist) is recovered
// from the audit log and said to be.
func TestCompletionFromAudit(t *testing.T) {
	clk := clock.NewFake(t0)
	p := newProject(t, true, clk)
	ctx := t.Context()
	if _, err := p.AddRelease(ctx, project.ReleaseSpec{Product: "thermostat", Version: "1.0.1", Payload: strings.NewReader("image"),
		Kind: release.KindSecurity, SecurityVersion: 2, Advisories: []release.Advisory{{ID: "CVE-2026-0001", Summary: "overflow"}}}); err != nil {
		t.Fatal(err)
	}
	expect(t, evaluate(t, p), "5.3-8", compliance.NotYet, "not offered")
	err := p.Store.Update(ctx, func(tx store.Tx) error {
		return errors.Join(
			tx.AddAudit(ctx, store.AuditEntry{Time: t0.Add(2 * time.Hour), Action: project.ActionRolloutStart, Object: "thermostat/1.0.1", Detail: "percent 10"}),
			tx.AddAudit(ctx, store.AuditEntry{Time: t0.Add(5 * time.Hour), Action: project.ActionRolloutChange, Object: "thermostat/1.0.1", Detail: "percent 10 -> 100"}))
	})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, evaluate(t, p), "5.3-8", compliance.Met,
		"reached 100% of devices (recovered from the audit log) at 2026-11-25 15:00 UTC, 5h00m after publication")
}
