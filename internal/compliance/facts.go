package compliance

import (
	"sort"
	"time"

	"github.com/uptrust/uptrust/internal/release"
)

// Facts is everything the rules judge: a snapshot of one product's state in
// an uptrust project at Now, plus what the uptrust-agent of this build does
// on devices. Gather fills it from a project; tests build it by hand.
// Evaluate never changes it.
type Facts struct {
	Product string
	// ProductCreated is when the product was added to the project.
	ProductCreated time.Time
	// Market is the manufacturer's declaration of placing the product on
	// the market; nil when none was made.
	Market *Market
	// Attestations are the standing attestations, the newest per item,
	// in item order.
	Attestations []Attestation
	// Completions are when releases' rollouts first reached every device,
	// oldest first.
	Completions []Completion
	// Now is the reference time of every expiry and age.
	Now time.Time
	// Dev marks a project made with init --dev (1-of-1, unencrypted keys).
	Dev bool
	// TimestampLifetime and SnapshotLifetime are the configured lifetimes
	// of the online roles.
	TimestampLifetime, SnapshotLifetime time.Duration

	// Support is the product's current support declaration, nil when there
	// is none or it cannot be read (SupportErr says why).
	Support    *release.Support
	SupportErr string
	// SupportTarget is the declaration's target in the product role; nil
	// when the role does not list it.
	SupportTarget *Target

	// Delegation is the product's role in the release repository's
	// top-level targets; nil when the product is not delegated.
	Delegation *Delegation
	// Repos are the release and the fleet repository.
	Repos []Repo

	// OfflineKeys are the key files found in DIR/keys/offline. Empty when
	// the offline keys are not on this machine. OfflineKeysErr is set when
	// the directory cannot be read.
	OfflineKeys    []KeyFile
	OfflineKeysErr string

	// Releases are the product's published releases in semver order.
	Releases []Release
	// Offers are what the fleet repository offers the product's devices.
	Offers []Offer

	Agent Agent
}

// Market is the manufacturer's market declaration.
type Market struct {
	// PlacedOn is the day the product is placed on the market.
	PlacedOn time.Time
	// ExpectedUseMonths is how long users are expected to use it.
	ExpectedUseMonths int
	// Justification says why the support period may be shorter than
	// five years; may be empty.
	Justification string
	// Recorded is when the declaration was made.
	Recorded time.Time
}

// Completion is when a release's rollout first reached every device.
type Completion struct {
	Version string
	Reached time.Time
	// FromAudit: recovered from the audit log, for rollouts completed
	// before uptrust recorded completions.
	FromAudit bool
}

// Key is a public key as TUF metadata lists it.
type Key struct {
	ID, Type, Scheme string
}

// Repo is one TUF repository.
type Repo struct {
	// Name is "release" or "fleet".
	Name          string
	RootVersion   int64
	RootThreshold int
	// RootKeyIDs are the keys of the root role.
	RootKeyIDs []string
	// Keys are all keys the root lists, for any role.
	Keys []Key
	// Roles are the latest documents of the top-level roles and, for the
	// release repository, of the product role.
	Roles []Role
}

// Role is the latest stored document of one role.
type Role struct {
	Repo, Name string
	Version    int64
	Expires    time.Time
	// Offline is true for roles signed with offline keys: root, the release
	// repository's targets and product roles. The server re-signs the
	// others itself.
	Offline bool
	// VerifyErr is set when the document's signatures do not meet the
	// threshold its delegator requires.
	VerifyErr string
}

// Delegation is a product role as the release repository's top-level
// targets delegates it.
type Delegation struct {
	Role        string
	KeyIDs      []string
	Keys        []Key
	Threshold   int
	Paths       []string
	Terminating bool
}

// Target is a target as a targets role signs it.
type Target struct {
	Path   string
	Length int64
	SHA256 string
	// Hashes are the names of all hashes listed.
	Hashes []string
}

// KeyFile is one key file on disk.
type KeyFile struct {
	Name      string
	Encrypted bool
	// Err is set when the file cannot be read as a key file.
	Err string
}

// Release is a published release with what its signed target says.
type Release struct {
	Version         string
	Kind            release.Kind
	SecurityVersion uint64
	Published       time.Time
	Notes           string
	Advisories      []release.Advisory
	Impact          release.Impact
	SecurityOnly    bool
	SecurityOnlyOf  string
	PayloadType     string
	// Target is the release's target in the product role; nil when the
	// role does not list it. TargetErr is set when it differs from the
	// release as stored (length or SHA-256).
	Target    *Target
	TargetErr string
	// BlobErr is set when the payload is not in the project's blob store.
	BlobErr string

	sha256 string // of the stored payload, for Gather
}

// Offer is a release the fleet repository offers, with its rollout rule.
type Offer struct {
	Version string
	Percent int
	Halted  bool
	Start   time.Time
}

// Agent is what the uptrust-agent of this build does on a device. None of
// it is stored in a project: the owner's controls are found by asking the
// agent's own policy code (probeAgent in gather.go), the rest is written
// down in agentCapabilities and checked against the agent's source by a test.
type Agent struct {
	// PollInterval is the default mean time between update checks.
	PollInterval time.Duration
	// ChecksAtStart: the agent checks as soon as it starts, then waits.
	ChecksAtStart bool
	// TAP4: a target is trusted only when the release and the fleet
	// repository agree on its length and hashes.
	TAP4 bool
	// ABRollback: installs go to the inactive slot, boot on trial, and roll
	// back when the new slot fails.
	ABRollback bool
	// AntiRollback: security versions below the highest installed are
	// refused.
	AntiRollback bool
	// ShowsOffered: the owner can see which release is offered and why it
	// is or is not installed (uptrust-agent status).
	ShowsOffered bool
	// ShowsSupportEnd: the owner can see the support end date.
	ShowsSupportEnd bool
	// ShowsReleaseInfo: the owner is shown the impact, notes and
	// advisories of a release that waits for them.
	ShowsReleaseInfo bool
	// Notifies: a notify hook tells the owner about releases that need
	// consent, installs, rollbacks and the end of support.
	Notifies bool
	// WarnsBeforeReboot: the agent tells the user before an install
	// interrupts the device (the reboot into the new slot).
	WarnsBeforeReboot bool

	// The owner's controls, each with what the agent says when it applies
	// (empty when it does not).

	// AppliesPolicy: a kind the maker's policy does not auto-install waits.
	AppliesPolicy bool
	PolicyReason  string
	// ConsentForAdverse: a release that removes functionality (or collects
	// more data, or adds recipients) waits for the owner's consent.
	ConsentForAdverse bool
	ConsentReason     string
	// OwnerOptOut: the owner can switch automatic updates off.
	OwnerOptOut  bool
	OptOutReason string
	// OwnerPostpone: the owner can postpone automatic updates, within the
	// maker's limit (PostponeLimited: a longer postponement is refused).
	OwnerPostpone   bool
	PostponeReason  string
	PostponeLimited bool
}

// policy returns the maker's effective policy.
func (f *Facts) policy() release.Policy { return f.Support.EffectivePolicy() }

// attestation returns the standing attestation of item, or nil.
func (f *Facts) attestation(item string) *Attestation {
	for i := range f.Attestations {
		if f.Attestations[i].Item == item {
			a := f.Attestations[i]
			return &a
		}
	}
	return nil
}

// securityReleases returns the releases of kind security in semver order.
func (f *Facts) securityReleases() []*Release {
	var out []*Release
	for i := range f.Releases {
		if f.Releases[i].Kind == release.KindSecurity {
			out = append(out, &f.Releases[i])
		}
	}
	return out
}

// repo returns the named repository, or nil.
func (f *Facts) repo(name string) *Repo {
	for i := range f.Repos {
		if f.Repos[i].Name == name {
			return &f.Repos[i]
		}
	}
	return nil
}

// roles returns every role of every repository.
func (f *Facts) roles() []Role {
	var out []Role
	for _, r := range f.Repos {
		out = append(out, r.Roles...)
	}
	return out
}

// release returns the release with the given version, or nil.
func (f *Facts) release(version string) *Release {
	for i := range f.Releases {
		if f.Releases[i].Version == version {
			return &f.Releases[i]
		}
	}
	return nil
}

// covering returns the offers that deliver the fixes of sec: the offered
// release is sec or newer and its security version is at least sec's.
func (f *Facts) covering(sec *Release) []Offer {
	var out []Offer
	for _, o := range f.Offers {
		r := f.release(o.Version)
		if r == nil {
			continue
		}
		if release.CompareVersions(r.Version, sec.Version) >= 0 && r.SecurityVersion >= sec.SecurityVersion {
			out = append(out, o)
		}
	}
	return out
}

// sortReleases orders releases by semver precedence.
func sortReleases(rs []Release) {
	sort.SliceStable(rs, func(i, j int) bool { return release.CompareVersions(rs[i].Version, rs[j].Version) < 0 })
}
