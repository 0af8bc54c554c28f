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
		Offers: []Offer{{Version: "1.0.1", Percent: 100, Start: now.AddDate(0, 0, -2).Add(3 * time.Hour)}},
		Agent:  agentAll(),
	}
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
	for _, r := range Evaluate(good()) {
		want := Met
		if r.ID == "5.3-14" || r.ID == "5.3-15" {
			want = NotApplicable
		}
		if r.Status != want {
			t.Errorf("%s: %s, want %s\nevidence:\n  %s", r.ID, r.Status, want, strings.Join(r.Evidence, "\n  "))
		}
		if len(r.Evidence) == 0 {
			t.Errorf("%s: no evidence", r.ID)
		}
		if r.Title == "" || r.Source == "" || r.Level == "" {
			t.Errorf("%s: missing title, source or level: %+v", r.ID, r)
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
	for _, id := range []string{"CRA-I-2c", "CRA-I-2f", "CRA-II-2", "CRA-II-7", "CRA-II-8", "CRA-13-8", "PSTI-3"} {
		if !seen[id] {
			t.Errorf("%s missing from %v", id, ids)
		}
	}
}

func TestSummary(t *testing.T) {
	got := Summary([]Result{{Status: Met}, {Status: NotMet}, {Status: Met}, {Status: NotApplicable}})
	if got != "2 met, 1 not met, 1 not applicable" {
		t.Errorf("Summary = %q", got)
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

		{"5.3-8", "met", nil, Met, "offered as 1.0.1 to 100% of devices"},
		{"5.3-8", "met: publication delay", nil, Met, "3h00m after publication"},
		{"5.3-8", "not offered", func(f *Facts) { f.Offers = []Offer{{Version: "1.0.0", Percent: 100}} }, NotMet, "not offered to any device: the fleet repository offers 1.0.0 at 100%"},
		{"5.3-8", "nothing offered", func(f *Facts) { f.Offers = nil }, NotMet, "offers no release of thermostat"},
		{"5.3-8", "halted", func(f *Facts) { f.Offers[0].Halted = true }, NotMet, "its rollout is halted"},
		{"5.3-8", "zero percent", func(f *Facts) { f.Offers[0].Percent = 0 }, NotMet, "not offered to any device"},
		{"5.3-8", "partial rollout", func(f *Facts) { f.Offers[0].Percent = 10 }, Met, "offered to only 10% of devices"},
		{"5.3-8", "newer release covers it", func(f *Facts) {
			f.Releases = append(f.Releases, Release{Version: "1.1.0", Kind: release.KindFeature, SecurityVersion: 2, PayloadType: "rootfs",
				Target: &Target{SHA256: "cc", Hashes: []string{"sha256"}}})
			f.Offers = []Offer{{Version: "1.1.0", Percent: 50}}
		}, Met, "offered as 1.1.0 to 50%"},
		{"5.3-8", "newer release with lower security version", func(f *Facts) {
			f.Releases[1].SecurityVersion = 3
			f.Releases = append(f.Releases, Release{Version: "1.1.0", Kind: release.KindFeature, SecurityVersion: 2, PayloadType: "rootfs"})
			f.Offers = []Offer{{Version: "1.1.0", Percent: 100}}
		}, NotMet, "not offered"},
		{"5.3-8", "no security release", func(f *Facts) { f.Releases = f.Releases[:1] }, Met, "no security release of thermostat is published yet"},

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

		{"5.3-12", "met", nil, Met, "no release of thermostat removes functionality"},
		{"5.3-12", "met: listed", func(f *Facts) {
			f.Releases[0].Impact.Functionality, f.Releases[0].Impact.FunctionalityText = release.ChangeLess, "drops the cloud schedule"
		}, Met, "1.0.0 removes functionality: drops the cloud schedule"},
		{"5.3-12", "met: consent", nil, Met, "until the owner consents (uptrust-agent consent VERSION)"},
		{"5.3-12", "no consent", func(f *Facts) { f.Agent.ConsentForAdverse = false }, NotMet, "without asking"},

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

		{"5.3-16", "met", nil, Met, `model designation "Thermostat T1"`},
		{"5.3-16", "no model", func(f *Facts) { f.Support.Model = "" }, NotMet, "names no model designation"},
		{"5.3-16", "model is the product name", func(f *Facts) { f.Support.Model = "thermostat" }, Met, "equals the product name"},
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
				Release{Version: "2.0.1", Kind: release.KindSecurity, SecurityVersion: 3, SecurityOnly: true, SecurityOnlyOf: "2.0.0", PayloadType: "rootfs",
					Advisories: []release.Advisory{{ID: "CVE-2026-0002"}}})
			f.Offers = []Offer{{Version: "2.0.0", Percent: 100}, {Version: "2.0.1", Percent: 100}}
		}, Met, "no feature release bundles"},
		{"CRA-II-2", "plain bundle", func(f *Facts) {
			f.Releases = append(f.Releases, Release{Version: "2.0.0", Kind: release.KindFeature, SecurityVersion: 3, PayloadType: "rootfs"})
		}, Met, "without a separate security-only build: 2.0.0"},
		{"CRA-II-2", "not delivered", func(f *Facts) { f.Offers[0].Halted = true }, NotMet, "halted"},

		{"CRA-II-7", "met", nil, Met, "static signed TUF metadata"},
		{"CRA-II-7", "expired", func(f *Facts) { f.Now = now.Add(8 * 24 * time.Hour) }, NotMet, "expired"},
		{"CRA-II-7", "not automatic", func(f *Facts) { f.Support.Policy.AutoInstall = []release.Kind{release.KindFix} }, NotMet, "auto-install fix"},

		{"CRA-II-8", "met", nil, Met, "free of charge"},
		{"CRA-II-8", "no advisory", func(f *Facts) { f.Releases[1].Advisories = nil }, NotMet, "without advisories or notes: 1.0.1"},
		{"CRA-II-8", "not offered", func(f *Facts) { f.Offers = nil }, NotMet, "not offered"},

		{"CRA-13-8", "met", nil, Met, "until 2031-12-31: 5 years 2 months"},
		{"CRA-13-8", "too short", func(f *Facts) { f.Support.Until = "2029-12-31" }, NotMet, "--until 2031-10-24"},
		{"CRA-13-8", "exactly five years", func(f *Facts) {
			f.ProductCreated = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
			f.Support.Until = "2031-01-01"
		}, Met, "5 years 0 months"},
		{"CRA-13-8", "one day short", func(f *Facts) {
			f.ProductCreated = time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC)
			f.Support.Until = "2031-01-01"
		}, NotMet, "shorter than the 5 years"},
		{"CRA-13-8", "no declaration", func(f *Facts) { f.Support, f.SupportErr = nil, "missing" }, NotMet, "missing"},

		{"PSTI-2", "met", nil, Met, `security contact "security@example.com"`},
		{"PSTI-2", "no contact", func(f *Facts) { f.Support.Contact = " " }, NotMet, "names no contact"},
		{"PSTI-3", "met", nil, Met, `stated for model "Thermostat T1"`},
		{"PSTI-3", "no model", func(f *Facts) { f.Support.Model = "" }, NotMet, "no model designation"},
		{"PSTI-3", "no declaration", func(f *Facts) { f.Support, f.SupportErr = nil, "missing" }, NotMet, "missing"},
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
