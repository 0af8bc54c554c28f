package compliance

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/release"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

const (
	productKeyID = "3f2a0000111122223333444455556666777788889999aaaabbbbccccddddeeee"
	supportSHA   = "04c68ebee8072c37803a10f95aa92e89c1fecc7ae1498937cbdafd41312e1cb2"
)

// agentAll is an agent that can do everything the rules ask of it.
func agentAll() Agent {
	return Agent{PollInterval: 6 * time.Hour, ChecksAtStart: true, TAP4: true, ABRollback: true, AntiRollback: true,
		ShowsOffered: true, ShowsSupportEnd: true, ShowsReleaseInfo: true, Notifies: true,
		AppliesPolicy: true, PolicyReason: "9.9.9 is a fix release and the maker's policy installs only security releases automatically",
		ConsentForAdverse: true, ConsentReason: "9.9.9 waits for the owner's consent because it removes functionality",
		OwnerPostpone: true, PostponeReason: "updates are postponed by the owner", PostponeLimited: true,
		OwnerOptOut: true, OptOutReason: "automatic updates are off"}
}

func repoFacts(name string, offlineTargets bool, extra ...Role) Repo {
	r := Repo{Name: name, RootVersion: 1, RootThreshold: 2, RootKeyIDs: []string{name + "-root-a", name + "-root-b", name + "-root-c"}}
	for _, id := range append(r.RootKeyIDs, name+"-targets", name+"-snapshot", name+"-timestamp") {
		r.Keys = append(r.Keys, Key{ID: id, Type: "ed25519", Scheme: "ed25519"})
	}
	r.Roles = []Role{
		{Repo: name, Name: "root", Version: 1, Expires: now.AddDate(1, 0, 0), Offline: true},
		{Repo: name, Name: "targets", Version: 2, Expires: now.AddDate(1, 0, 0), Offline: offlineTargets},
	}
	r.Roles = append(r.Roles, extra...)
	r.Roles = append(r.Roles,
		Role{Repo: name, Name: "snapshot", Version: 3, Expires: now.Add(7 * 24 * time.Hour)},
		Role{Repo: name, Name: "timestamp", Version: 3, Expires: now.Add(24 * time.Hour)})
	return r
}

// good returns facts that meet every provision: a production project with
// an updateable product, one security release with an advisory offered to
// every device, and an agent that can do everything.
func good() *Facts {
	pol := release.DefaultPolicy()
	return &Facts{
		Product: "thermostat", ProductCreated: now.AddDate(0, -1, 0), Now: now,
		TimestampLifetime: 24 * time.Hour, SnapshotLifetime: 7 * 24 * time.Hour,
		Support: &release.Support{Product: "thermostat", Model: "Thermostat T1", Hardware: []string{"rev-a"}, Until: "2031-12-31",
			Contact: "security@example.com", Issued: now.AddDate(0, -1, 0), Policy: &pol},
		SupportTarget: &Target{Path: "thermostat/support.json", Length: 300, SHA256: supportSHA, Hashes: []string{"sha256"}},
		Delegation: &Delegation{Role: "products/thermostat", KeyIDs: []string{productKeyID}, Keys: []Key{{ID: productKeyID, Type: "ed25519", Scheme: "ed25519"}},
			Threshold: 1, Paths: []string{"thermostat/*"}, Terminating: true},
		Repos: []Repo{
			repoFacts("release", true, Role{Repo: "release", Name: "products/thermostat", Version: 4, Expires: now.AddDate(1, 0, 0), Offline: true}),
			repoFacts("fleet", false),
		},
		OfflineKeys: []KeyFile{{Name: "release-root-1.key", Encrypted: true}, {Name: "product-thermostat.key", Encrypted: true}},
		Releases: []Release{
			{Version: "1.0.0", Kind: release.KindFeature, SecurityVersion: 1, Published: now.AddDate(0, 0, -20), PayloadType: "rootfs",
				Impact: release.Impact{DataCollection: release.ChangeNone, Functionality: release.ChangeNone},
				Target: &Target{Path: "thermostat/1.0.0", Length: 10, SHA256: "aa", Hashes: []string{"sha256"}}},
			{Version: "1.0.1", Kind: release.KindSecurity, SecurityVersion: 2, Published: now.AddDate(0, 0, -2), PayloadType: "rootfs",
				Advisories: []release.Advisory{{ID: "CVE-2026-0001", Summary: "remote code execution"}},
				Impact:     release.Impact{DataCollection: release.ChangeNone, Functionality: release.ChangeNone},
				Target:     &Target{Path: "thermostat/1.0.1", Length: 10, SHA256: "bb", Hashes: []string{"sha256"}}},
		},
		Offers:       []Offer{{Version: "1.0.1", Percent: 100, Start: now.AddDate(0, 0, -2).Add(3 * time.Hour)}},
		Completions:  []Completion{{Version: "1.0.1", Reached: now.AddDate(0, 0, -2).Add(3 * time.Hour)}},
		Market:       &Market{PlacedOn: time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC), ExpectedUseMonths: 60, Recorded: now.AddDate(0, -1, 0)},
		Attestations: attestAll(),
		Agent:        agentAll(),
	}
}

// attestAll attests every item that can be attested.
func attestAll() []Attestation {
	var out []Attestation
	for _, a := range Attestable() {
		note := "evidence for " + a.ID
		if a.ID == "5.3-12" {
			note = "the display shows a restart warning"
		}
		out = append(out, Attestation{Item: a.ID, URL: "https://example.com/evidence/" + a.ID, Note: note, By: "device team", Time: now.AddDate(0, 0, -1)})
	}
	return out
}

func result(t *testing.T, f *Facts, id string) Result {
	t.Helper()
	for _, r := range Evaluate(f) {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no result for %s", id)
	return Result{}
}

func TestGoodFactsMeetEverything(t *testing.T) {
	attestable := map[string]bool{}
	for _, a := range Attestable() {
		attestable[a.ID] = true
	}
	for _, r := range Evaluate(good()) {
		want := Met
		switch {
		case r.ID == "5.3-14" || r.ID == "5.3-15":
			want = NotApplicable
		case attestable[r.ID]:
			want = Attested
		}
		if r.Status != want {
			t.Errorf("%s: %s, want %s\nevidence:\n  %s", r.ID, r.Status, want, strings.Join(r.Evidence, "\n  "))
		}
		if len(r.Evidence) == 0 {
			t.Errorf("%s: no evidence", r.ID)
		}
		if r.Title == "" || r.Source == "" || r.Force == "" {
			t.Errorf("%s: missing title, source or force: %+v", r.ID, r)
		}
		if (r.Status == Attested) != (r.Attestation != nil) {
			t.Errorf("%s: %s with attestation %+v", r.ID, r.Status, r.Attestation)
		}
		if len(r.Warnings) > 0 {
			t.Errorf("%s: unexpected warnings %q", r.ID, r.Warnings)
		}
	}
}

func TestIDs(t *testing.T) {
	ids := IDs()
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("duplicate id %s", id)
		}
		seen[id] = true
	}
	for i := 1; i <= 16; i++ {
		if !seen[fmt.Sprintf("5.3-%d", i)] {
			t.Errorf("5.3-%d missing from %v", i, ids)
		}
	}
	for _, id := range []string{"CRA-I-2c", "CRA-I-2f", "CRA-II-2", "CRA-II-4", "CRA-II-5", "CRA-II-6", "CRA-II-7", "CRA-II-8",
		"CRA-13-8", "CRA-13-9", "CRA-13-19", "PSTI-2", "PSTI-3"} {
		if !seen[id] {
			t.Errorf("%s missing from %v", id, ids)
		}
	}
}

func TestSummary(t *testing.T) {
	rs := []Result{{ID: "a", Force: Shall, Status: Met}, {ID: "b", Force: ConditionalShall, Status: NotMet}, {ID: "c", Force: Should, Status: NotMet},
		{ID: "d", Force: Shall, Status: NotYet}, {ID: "e", Force: Shall, Status: Attested}, {ID: "f", Force: ConditionalShall, Status: NotApplicable},
		{ID: "g", Force: Shall, Status: NotMet}}
	if got := Summary(rs); got != "1 met, 3 not met, 1 not yet demonstrable, 1 attested, 1 not applicable" {
		t.Errorf("Summary = %q", got)
	}
	if got := ShallsNotMet(rs); !reflect.DeepEqual(got, []string{"b", "g"}) {
		t.Errorf("ShallsNotMet = %q, want b and g (c is a should)", got)
	}
}

// TestRules changes one fact of good() at a time and checks the verdict of
// one provision and a piece of its evidence or warnings.
func TestRules(t *testing.T) {
	tests := []struct {
		id     string
		name   string
		change func(f *Facts)
		want   Status
		// contains must appear in the evidence or the warnings.
		contains string
	}{
		{"5.3-1", "met", nil, Met, "products/thermostat is delegated"},
		{"5.3-1", "no delegation", func(f *Facts) { f.Delegation = nil }, NotMet, "delegates no role products/thermostat"},
		{"5.3-1", "delegation for other paths", func(f *Facts) { f.Delegation.Paths = []string{"other/*"} }, NotMet, "not thermostat/*"},
		{"5.3-1", "partial payload", func(f *Facts) { f.Releases[0].PayloadType = "file" }, NotMet, `payload type "file"`},

		{"5.3-2", "met", nil, Met, "A/B slot"},
		{"5.3-2", "broken signature", func(f *Facts) { f.Repos[1].Roles[2].VerifyErr = "bad signature" }, NotMet, "fleet repository: snapshot v3 does not verify"},
		{"5.3-2", "no A/B", func(f *Facts) { f.Agent.ABRollback = false }, NotMet, "no A/B install"},

		{"5.3-3", "met", nil, Met, "no action from the owner"},
		{"5.3-3", "security not automatic", func(f *Facts) { f.Support.Policy.AutoInstall = []release.Kind{release.KindFix} }, NotMet, "wait for the owner"},
		{"5.3-3", "agent ignores policy", func(f *Facts) {
			f.Agent.AppliesPolicy = false
			f.Support.Policy.AutoInstall = nil
		}, Met, "installs them automatically"},

		{"5.3-4", "met", nil, Met, "auto-install security, fix, feature"},
		{"5.3-4", "security not automatic", func(f *Facts) { f.Support.Policy.AutoInstall = []release.Kind{release.KindFeature} }, NotMet, "auto-install feature"},
		{"5.3-4", "no declaration: default policy", func(f *Facts) { f.Support = nil }, Met, "auto-install security, fix, feature"},

		{"5.3-5", "met", nil, Met, "every 6h on average"},
		{"5.3-5", "no check at start", func(f *Facts) { f.Agent.ChecksAtStart = false }, NotMet, "does not check when it starts"},
		{"5.3-5", "no periodic check", func(f *Facts) { f.Agent.PollInterval = 0 }, NotMet, "no periodic check"},
		{"5.3-5", "poll slower than timestamps", func(f *Facts) { f.Agent.PollInterval = 20 * time.Hour }, Met, "exceeds the timestamp lifetime"},

		{"5.3-6", "met", nil, Met, "owners may postpone up to 30 days"},
		{"5.3-6", "met: opt-out", nil, Met, `opt-out: uptrust-agent policy auto-updates off; the agent then holds even security releases and says, for a sample release, "automatic updates are off"`},
		{"5.3-6", "met: postpone", nil, Met, "up to 30 days under the maker's policy, longer ones are refused"},
		{"5.3-6", "met: policy", nil, Met, "installs only security releases automatically"},
		{"5.3-6", "no opt-out", func(f *Facts) { f.Agent.OwnerOptOut = false }, NotMet, "switch automatic updates off"},
		{"5.3-6", "no postpone command", func(f *Facts) { f.Agent.OwnerPostpone = false }, NotMet, "no owner command to postpone"},
		{"5.3-6", "maker forbids postponing", func(f *Facts) { f.Support.Policy.MaxPostponeDays = 0 }, NotMet, "the maker's policy allows 0 days"},
		{"5.3-6", "policy not applied", func(f *Facts) { f.Agent.AppliesPolicy = false }, NotMet, "does not apply the maker's policy"},

		{"5.3-7", "met", nil, Met, "release root v1: threshold 2 of 3"},
		{"5.3-7", "met: encrypted keys", nil, Met, "all 2 offline key files in keys/offline are encrypted"},
		{"5.3-7", "dev project", func(f *Facts) { f.Dev = true }, NotMet, "development project"},
		{"5.3-7", "1-of-1 root", func(f *Facts) { f.Repos[0].RootThreshold, f.Repos[0].RootKeyIDs = 1, f.Repos[0].RootKeyIDs[:1] }, NotMet, "release root threshold 1"},
		{"5.3-7", "unencrypted offline key", func(f *Facts) { f.OfflineKeys[1].Encrypted = false }, NotMet, "offline keys stored unencrypted: product-thermostat.key"},
		{"5.3-7", "unreadable key file", func(f *Facts) { f.OfflineKeys[0].Err = "not a key file" }, NotMet, "cannot be read: release-root-1.key"},
		{"5.3-7", "key directory unreadable", func(f *Facts) { f.OfflineKeysErr = "permission denied" }, NotMet, "cannot inspect the offline keys"},
		{"5.3-7", "offline keys elsewhere", func(f *Facts) { f.OfflineKeys = nil }, Met, "no offline key files on this machine"},
		{"5.3-7", "weak scheme", func(f *Facts) { f.Repos[1].Keys[0].Type, f.Repos[1].Keys[0].Scheme = "rsa", "rsassa-pss-sha256" }, NotMet, "not Ed25519 or ECDSA P-256"},
		{"5.3-7", "target without sha256", func(f *Facts) { f.Releases[1].Target.SHA256 = "" }, NotMet, "lists no SHA-256"},

		{"5.3-8", "met", nil, Met, "security release 1.0.1 (security version 2), published with its advisories 2026-11-23 12:00 UTC: reached 100% of devices at 2026-11-23 15:00 UTC, 3h00m after publication"},
		{"5.3-8", "met: yardstick stated", nil, Met, "against uptrust's yardstick of 30d: neither EN 303 645 nor the CRA sets a number"},
		{"5.3-8", "not offered yet", func(f *Facts) { f.Completions = nil; f.Offers = []Offer{{Version: "1.0.0", Percent: 100}} }, NotYet, "not offered to any device: the fleet repository offers 1.0.0 at 100%"},
		{"5.3-8", "nothing offered", func(f *Facts) { f.Completions, f.Offers = nil, nil }, NotYet, "offers no release of thermostat"},
		{"5.3-8", "halted", func(f *Facts) { f.Completions = nil; f.Offers[0].Percent, f.Offers[0].Halted = 20, true }, NotYet, "its rollout is halted"},
		{"5.3-8", "first stage only", func(f *Facts) { f.Completions = nil; f.Offers[0].Percent = 10 }, NotYet, "offered as 1.0.1 to 10% of devices"},
		{"5.3-8", "first stage only: warned", func(f *Facts) { f.Completions = nil; f.Offers[0].Percent = 10 }, NotYet, "no rollout of a security release of thermostat has reached every device yet"},
		{"5.3-8", "stuck beyond the yardstick", func(f *Facts) { f.Completions = nil; f.Offers[0].Percent = 10; f.Now = now.AddDate(0, 0, 30) }, NotMet, "not yet offered to every device, 32d0h after publication; offered as 1.0.1 to 10% of devices since 2026-11-23 15:00 UTC: later than 30d"},
		{"5.3-8", "reached late", func(f *Facts) { f.Completions[0].Reached = f.Releases[1].Published.AddDate(0, 0, 31) }, NotMet, "31d0h after publication: later than 30d"},
		{"5.3-8", "newer release covers it", func(f *Facts) {
			f.Releases = append(f.Releases, Release{Version: "1.1.0", Kind: release.KindFeature, SecurityVersion: 2, PayloadType: "rootfs",
				Target: &Target{SHA256: "cc", Hashes: []string{"sha256"}}})
			f.Completions = []Completion{{Version: "1.1.0", Reached: now.AddDate(0, 0, -1)}}
		}, Met, "reached 100% of devices as 1.1.0 at 2026-11-24 12:00 UTC, 24h00m after publication"},
		{"5.3-8", "newer release with lower security version", func(f *Facts) {
			f.Releases[1].SecurityVersion = 3
			f.Releases = append(f.Releases, Release{Version: "1.1.0", Kind: release.KindFeature, SecurityVersion: 2, PayloadType: "rootfs"})
			f.Completions = []Completion{{Version: "1.1.0", Reached: now}}
		}, NotYet, "1.0.1 (security version 3), published with its advisories 2026-11-23 12:00 UTC: not yet offered to every device"},
		{"5.3-8", "second security release in progress", func(f *Facts) {
			f.Releases = append(f.Releases, Release{Version: "1.0.2", Kind: release.KindSecurity, SecurityVersion: 3, PayloadType: "rootfs", Published: now.Add(-time.Hour),
				Advisories: []release.Advisory{{ID: "CVE-2026-0002"}}})
			f.Offers = []Offer{{Version: "1.0.2", Percent: 5, Start: now}}
		}, Met, "security release 1.0.2 has not reached every device yet (1h00m after publication)"},
		{"5.3-8", "recovered from the audit log", func(f *Facts) { f.Completions[0].FromAudit = true }, Met,
			"reached 100% of devices (recovered from the audit log) at 2026-11-23 15:00 UTC"},
		{"5.3-8", "no security release", func(f *Facts) { f.Releases = f.Releases[:1] }, NotYet, "no security release of thermostat is published"},

		{"5.3-9", "met", nil, Met, "2 of 2 releases signed in products/thermostat"},
		{"5.3-9", "target differs from stored release", func(f *Facts) { f.Releases[0].TargetErr = "lists 10 bytes" }, NotMet, "release 1.0.0: lists 10 bytes"},
		{"5.3-9", "release not signed", func(f *Facts) { f.Releases[0].Target = nil }, NotMet, "1.0.0 is not listed in products/thermostat"},
		{"5.3-9", "product role does not verify", func(f *Facts) { f.Repos[0].Roles[2].VerifyErr = "threshold" }, NotMet, "products/thermostat v4 does not verify"},
		{"5.3-9", "no TAP 4", func(f *Facts) { f.Agent.TAP4 = false }, NotMet, "does not verify updates against both"},

		{"5.3-10", "met", nil, Met, "first expiry: release timestamp v3 at 2026-11-26 12:00 UTC (in 24h00m)"},
		{"5.3-10", "met: root keys", nil, Met, "release root v1 keys: release-root"},
		{"5.3-10", "expired timestamp", func(f *Facts) { f.Now = now.Add(25 * time.Hour) }, NotMet, "release timestamp v3 expired"},
		{"5.3-10", "offline role expires soon", func(f *Facts) { f.Repos[0].Roles[2].Expires = now.Add(10 * 24 * time.Hour) }, Met, "offline release products/thermostat v4 expires"},
		{"5.3-10", "expired offline role", func(f *Facts) { f.Repos[0].Roles[1].Expires = now.Add(-time.Hour) }, NotMet, "re-sign it with the offline keys"},
		{"5.3-10", "no TAP 4", func(f *Facts) { f.Agent.TAP4 = false }, NotMet, "does not require both repositories to agree"},
		{"5.3-10", "no fleet repository", func(f *Facts) { f.Repos = f.Repos[:1] }, NotMet, "TUF with two repositories"},

		{"5.3-11", "met", nil, Met, "1.0.1 carries signed advisories CVE-2026-0001"},
		{"5.3-11", "notes suffice", func(f *Facts) { f.Releases[1].Advisories, f.Releases[1].Notes = nil, "fixes a remote exploit" }, Met, "release notes (22 characters)"},
		{"5.3-11", "silent security release", func(f *Facts) { f.Releases[1].Advisories = nil }, NotMet, "without advisories or notes: 1.0.1"},
		{"5.3-11", "agent shows nothing", func(f *Facts) { f.Agent.ShowsReleaseInfo = false }, NotMet, "does not show the owner"},
		{"5.3-11", "met: notify", nil, Met, "needs-consent event with the release's notes and advisories"},
		{"5.3-11", "no security release", func(f *Facts) { f.Releases = f.Releases[:1] }, NotYet, "cannot be judged yet"},

		{"5.3-12", "attested", nil, Attested, "attested by device team on 2026-11-24 12:00 UTC: the display shows a restart warning (https://example.com/evidence/5.3-12)"},
		{"5.3-12", "agent does not warn", nil, Attested, "runs reboot_command without telling the user first"},
		{"5.3-12", "not attested", func(f *Facts) { f.Attestations = nil }, NotMet, "not attested: uptrust cannot see whether the device tells the user"},
		{"5.3-12", "agent warns", func(f *Facts) { f.Agent.WarnsBeforeReboot, f.Attestations = true, nil }, Met, "tells the user before it reboots"},

		{"5.3-13", "met", nil, Met, "support period published: until 2031-12-31, signed by products/thermostat key 3f2a00001111…"},
		{"5.3-13", "met: public path", nil, Met, "/repo/release/targets/thermostat/" + supportSHA + ".support.json"},
		{"5.3-13", "no declaration", func(f *Facts) { f.Support, f.SupportErr = nil, "product has no support declaration" }, NotMet, "no support declaration"},
		{"5.3-13", "not signed", func(f *Facts) { f.SupportTarget = nil }, NotMet, "not listed as a target"},
		{"5.3-13", "role does not verify", func(f *Facts) { f.Repos[0].Roles[2].VerifyErr = "bad" }, NotMet, "carrying the declaration does not verify"},
		{"5.3-13", "bad date", func(f *Facts) { f.Support.Until = "soon" }, NotMet, "no valid end date"},
		{"5.3-13", "ended", func(f *Facts) { f.Now = time.Date(2032, 1, 2, 0, 0, 0, 0, time.UTC); f.Offers = nil }, Met, "support ended on 2031-12-31"},

		{"5.3-14", "updateable", nil, NotApplicable, "do not apply"},
		{"5.3-14", "not updateable", func(f *Facts) { f.Delegation = nil }, NotMet, "isolable"},
		{"5.3-15", "updateable", nil, NotApplicable, "do not apply"},
		{"5.3-15", "not updateable", func(f *Facts) { f.Delegation = nil }, NotMet, "cannot be updated"},

		{"5.3-16", "attested", nil, Attested, `model designation "Thermostat T1"`},
		{"5.3-16", "not attested", func(f *Facts) { f.Attestations = nil }, NotMet, "compliance attest thermostat 5.3-16 --url URL --note TEXT"},
		{"5.3-16", "no model", func(f *Facts) { f.Support.Model = "" }, NotMet, "names no model designation"},
		{"5.3-16", "model is the product name", func(f *Facts) { f.Support.Model = "thermostat" }, Attested, "equals the product name"},
		{"5.3-16", "no declaration", func(f *Facts) { f.Support, f.SupportErr = nil, "gone" }, NotMet, "gone"},

		{"CRA-I-2c", "met", nil, Met, "notify hook tells the owner"},
		{"CRA-I-2c", "status only", func(f *Facts) { f.Agent.Notifies = false }, Met, "notification: uptrust-agent status shows the offered release"},
		{"CRA-I-2c", "no opt-out", func(f *Facts) { f.Agent.OwnerOptOut = false }, NotMet, "no opt-out"},
		{"CRA-I-2c", "no postponement", func(f *Facts) { f.Support.Policy.MaxPostponeDays = 0 }, NotMet, "allows 0 days"},
		{"CRA-I-2c", "no postpone command", func(f *Facts) { f.Agent.OwnerPostpone = false }, NotMet, "no owner command to postpone"},
		{"CRA-I-2c", "not automatic", func(f *Facts) { f.Support.Policy.AutoInstall = nil }, NotMet, "not automatic by default"},
		{"CRA-I-2c", "no notification", func(f *Facts) { f.Agent.ShowsOffered = false }, NotMet, "not told about available updates"},

		{"CRA-I-2f", "met", nil, Met, "writes nothing to the boot slot"},
		{"CRA-I-2f", "signature fails", func(f *Facts) { f.Repos[0].Roles[0].VerifyErr = "bad" }, NotMet, "root v1 does not verify"},
		{"CRA-I-2f", "met: corruption reported", nil, Met, "corruption is reported"},
		{"CRA-I-2f", "no notification", func(f *Facts) { f.Agent.Notifies = false }, NotMet, "does not report a corrupted or failed image"},
		{"CRA-I-2f", "no rollback", func(f *Facts) { f.Agent.ABRollback = false }, NotMet, "lacks TAP 4 verification or A/B rollback"},

		{"CRA-II-2", "met", nil, Met, "no feature release bundles security fixes"},
		{"CRA-II-2", "adverse bundle", func(f *Facts) {
			f.Releases = append(f.Releases, Release{Version: "2.0.0", Kind: release.KindFeature, SecurityVersion: 3, PayloadType: "rootfs",
				Impact: release.Impact{DataCollection: release.ChangeMore, DataCollectionText: "usage statistics"}})
			f.Offers = []Offer{{Version: "2.0.0", Percent: 100}}
		}, NotMet, "without a security-only build (owners who decline keep the vulnerability): 2.0.0"},
		{"CRA-II-2", "adverse bundle with companion", func(f *Facts) {
			f.Releases = append(f.Releases,
				Release{Version: "2.0.0", Kind: release.KindFeature, SecurityVersion: 3, PayloadType: "rootfs",
					Impact: release.Impact{DataCollection: release.ChangeMore, DataCollectionText: "usage statistics"}},
				Release{Version: "2.0.1", Kind: release.KindSecurity, SecurityVersion: 3, SecurityOnly: true, SecurityOnlyOf: "2.0.0", PayloadType: "rootfs", Published: now,
					Advisories: []release.Advisory{{ID: "CVE-2026-0002"}}})
			f.Offers = []Offer{{Version: "2.0.0", Percent: 100}, {Version: "2.0.1", Percent: 100}}
		}, Met, "no feature release bundles"},
		{"CRA-II-2", "plain bundle", func(f *Facts) {
			f.Releases = append(f.Releases, Release{Version: "2.0.0", Kind: release.KindFeature, SecurityVersion: 3, PayloadType: "rootfs"})
		}, Met, "without a separate security-only build: 2.0.0"},
		{"CRA-II-2", "not delivered", func(f *Facts) { f.Completions = nil; f.Offers[0].Halted = true; f.Now = now.AddDate(0, 1, 0) }, NotMet, "its rollout is halted"},
		{"CRA-II-2", "no security release", func(f *Facts) { f.Releases = f.Releases[:1] }, NotYet, "no security release"},

		{"CRA-II-7", "met", nil, Met, "static signed TUF metadata"},
		{"CRA-II-7", "expired", func(f *Facts) { f.Now = now.Add(8 * 24 * time.Hour) }, NotMet, "expired"},
		{"CRA-II-7", "not automatic", func(f *Facts) { f.Support.Policy.AutoInstall = []release.Kind{release.KindFix} }, NotMet, "auto-install fix"},

		{"CRA-II-8", "attested", nil, Attested, "serves metadata and payloads under /repo/ without an account"},
		{"CRA-II-8", "not attested", func(f *Facts) { f.Attestations = nil }, NotMet, "security updates are free of charge for users"},
		{"CRA-II-8", "no advisory", func(f *Facts) { f.Releases[1].Advisories = nil }, NotMet, "without advisories or notes: 1.0.1"},
		{"CRA-II-8", "not offered yet", func(f *Facts) { f.Offers, f.Completions = nil, nil }, NotYet, "not offered"},
		{"CRA-II-8", "late", func(f *Facts) { f.Offers, f.Completions = nil, nil; f.Now = now.AddDate(0, 2, 0) }, NotMet, "later than 30d"},

		{"CRA-II-4", "met", nil, Met, "carries signed advisories CVE-2026-0001"},
		{"CRA-II-4", "silent security release", func(f *Facts) { f.Releases[1].Advisories = nil }, NotMet, "without advisories or notes: 1.0.1"},
		{"CRA-II-4", "no security release", func(f *Facts) { f.Releases = f.Releases[:1] }, NotYet, "no fixed vulnerability to inform about yet"},

		{"CRA-II-5", "attested", nil, Attested, "attested by device team"},
		{"CRA-II-5", "not attested", func(f *Facts) { f.Attestations = nil }, NotMet, "coordinated vulnerability disclosure policy is published and enforced"},
		{"CRA-II-5", "withdrawn elsewhere", func(f *Facts) { f.Attestations = f.Attestations[1:] }, Attested, "CRA-II-5"},
		{"CRA-II-6", "attested", nil, Attested, `security contact "security@example.com"`},
		{"CRA-II-6", "no contact", func(f *Facts) { f.Support.Contact = "" }, NotMet, "names no contact"},

		{"CRA-13-9", "met", nil, Met, "security release 1.0.1: payload in the blob store and listed in products/thermostat, to be kept available until at least 2036-11-23"},
		{"CRA-13-9", "support outlasts ten years", func(f *Facts) { f.Support.Until = "2040-06-30" }, Met, "until at least 2040-06-30"},
		{"CRA-13-9", "payload gone", func(f *Facts) { f.Releases[1].BlobErr = "blob: no such file" }, NotMet, "1.0.1: its payload is missing from the blob store: blob: no such file"},
		{"CRA-13-9", "not listed", func(f *Facts) { f.Releases[1].Target = nil }, NotMet, "1.0.1 is not listed in products/thermostat"},
		{"CRA-13-9", "no security release", func(f *Facts) { f.Releases = f.Releases[:1] }, NotYet, "nothing to keep available yet"},

		{"CRA-13-19", "attested", nil, Attested, "2031-12-31 (December 2031)"},
		{"CRA-13-19", "not attested", func(f *Facts) { f.Attestations = nil }, NotMet, "shown clearly where the product is offered for purchase"},
		{"CRA-13-19", "no declaration", func(f *Facts) { f.Support, f.SupportErr = nil, "missing" }, NotMet, "missing"},

		{"CRA-13-8", "met", nil, Met, "support from 2026-10-25 until 2031-12-31: 5 years 2 months"},
		{"CRA-13-8", "met: declared", nil, Met, "placed on the market 2026-10-25 and expected in use for 5 years 0 months"},
		{"CRA-13-8", "no market declaration", func(f *Facts) { f.Market = nil }, NotMet, "uptrust compliance market thermostat --placed-on YYYY-MM-DD"},
		{"CRA-13-8", "five years is a floor", func(f *Facts) { f.Market.ExpectedUseMonths = 8 * 12 }, NotMet, "shorter than the expected time in use: the period must reflect it (five years is a floor, not a target); extend with uptrust product support extend thermostat --until 2034-10-24"},
		{"CRA-13-8", "covers a longer expected use", func(f *Facts) { f.Market.ExpectedUseMonths = 62 }, Met, "at least 5 years and at least the expected time in use"},
		{"CRA-13-8", "too short", func(f *Facts) { f.Support.Until = "2029-12-31" }, NotMet, "shorter than the expected time in use"},
		{"CRA-13-8", "short use without justification", func(f *Facts) { f.Support.Until = "2029-12-31"; f.Market.ExpectedUseMonths = 36 }, NotMet, "none is declared"},
		{"CRA-13-8", "short use justified", func(f *Facts) {
			f.Support.Until = "2029-12-31"
			f.Market.ExpectedUseMonths, f.Market.Justification = 36, "a three-year rental device"
		}, Met, "shorter than 5 years because the expected time in use is: a three-year rental device"},
		{"CRA-13-8", "exactly five years", func(f *Facts) {
			f.Market.PlacedOn = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			f.Support.Until = "2030-12-31"
		}, Met, "5 years 0 months"},
		{"CRA-13-8", "one day short", func(f *Facts) {
			f.Market.PlacedOn = time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
			f.Support.Until = "2030-12-31"
		}, NotMet, "shorter than the expected time in use"},
		{"CRA-13-8", "no declaration", func(f *Facts) { f.Support, f.SupportErr = nil, "missing" }, NotMet, "missing"},

		{"PSTI-2", "attested", nil, Attested, `security contact "security@example.com"`},
		{"PSTI-2", "no contact", func(f *Facts) { f.Support.Contact = " " }, NotMet, "names no contact"},
		{"PSTI-2", "not attested", func(f *Facts) { f.Attestations = nil }, NotMet, "when reporters get an acknowledgement and status updates"},
		{"PSTI-3", "attested", nil, Attested, `stated for model "Thermostat T1"`},
		{"PSTI-3", "no model", func(f *Facts) { f.Support.Model = "" }, NotMet, "no model designation"},
		{"PSTI-3", "no declaration", func(f *Facts) { f.Support, f.SupportErr = nil, "missing" }, NotMet, "missing"},
		{"PSTI-3", "not attested", func(f *Facts) { f.Attestations = nil }, NotMet, "with every invitation to purchase"},
	}
	for _, tt := range tests {
		t.Run(tt.id+"/"+tt.name, func(t *testing.T) {
			f := good()
			if tt.change != nil {
				tt.change(f)
			}
			r := result(t, f, tt.id)
			text := strings.Join(append(append([]string(nil), r.Evidence...), r.Warnings...), "\n")
			if r.Status != tt.want {
				t.Errorf("status %s, want %s\n%s", r.Status, tt.want, text)
			}
			if !strings.Contains(text, tt.contains) {
				t.Errorf("evidence and warnings do not mention %q:\n%s", tt.contains, text)
			}
		})
	}
}

// TestEvaluateDoesNotChangeFacts guards the purity of the rules.
func TestEvaluateDoesNotChangeFacts(t *testing.T) {
	for _, change := range []func(*Facts){
		nil,
		func(f *Facts) { f.Support = nil },
		func(f *Facts) { f.Offers = nil; f.Releases[1].Advisories = nil },
	} {
		f, want := good(), good()
		if change != nil {
			change(f)
			change(want)
		}
		Evaluate(f)
		if !reflect.DeepEqual(f, want) {
			t.Errorf("Evaluate changed the facts:\ngot  %+v\nwant %+v", f, want)
		}
	}
}

func TestHelpers(t *testing.T) {
	for _, tt := range []struct {
		got, want string
	}{
		{short("0123456789abcdef"), "0123456789ab…"},
		{short("abc"), "abc"},
		{human(6 * time.Hour), "6h"},
		{human(7 * 24 * time.Hour), "7d"},
		{human(90 * time.Minute), "1h30m0s"},
		{relative(now, now.Add(90*time.Minute)), "in 1h30m"},
		{relative(now, now.Add(-50*time.Hour)), "2d2h ago"},
		{yearsMonths(time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC)), "5 years 1 month"},
		{yearsMonths(time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), time.Date(2027, 11, 24, 0, 0, 0, 0, time.UTC)), "0 years 11 months"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
