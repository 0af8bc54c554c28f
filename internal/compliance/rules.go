package compliance

import (
	"fmt"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/release"
)

// rule is one provision and the check that judges it. check must set the
// result's Status and should give at least one line of evidence.
type rule struct {
	id, source, level, title string
	check                    func(*Facts, *Result)
}

const (
	etsi = "ETSI EN 303 645 V2.1.1 provision "
	cra  = "EU CRA (Regulation (EU) 2024/2847) "
	psti = "UK PSTI (SI 2023/1007) Schedule 1 "
)

// expiryWarning is how close to expiry an offline role draws a warning:
// offline roles are re-signed by hand, so a month's notice.
const expiryWarning = 30 * 24 * time.Hour

// supportYears is the minimum support period of CRA Article 13(8).
const supportYears = 5

// rules in report order. Titles paraphrase the provisions.
var rules = []rule{
	{"5.3-1", etsi + "5.3-1", "should", "all software components are securely updateable", checkUpdateable},
	{"5.3-2", etsi + "5.3-2", "shall", "an update mechanism for the secure installation of updates", checkMechanism},
	{"5.3-3", etsi + "5.3-3", "shall", "updates are simple for the user to apply", checkSimple},
	{"5.3-4", etsi + "5.3-4", "should", "automatic mechanisms are used for software updates", checkAutomatic},
	{"5.3-5", etsi + "5.3-5", "should", "the device checks for security updates after initialisation and then periodically", checkPolling},
	{"5.3-6", etsi + "5.3-6", "should", "automatic updates on by default; the user can enable, disable or postpone them", checkUserControl},
	{"5.3-7", etsi + "5.3-7", "shall", "best practice cryptography secures the update mechanism", checkCrypto},
	{"5.3-8", etsi + "5.3-8", "shall", "security updates are timely", checkTimely},
	{"5.3-9", etsi + "5.3-9", "should", "the device verifies the authenticity and integrity of updates", checkVerify},
	{"5.3-10", etsi + "5.3-10", "shall", "updates over a network are verified through a trust relationship", checkTrust},
	{"5.3-11", etsi + "5.3-11", "should", "the user is told that a security update is required and which risks it mitigates", checkInform},
	{"5.3-12", etsi + "5.3-12", "should", "the user is notified when an update will disrupt basic functioning", checkDisrupt},
	{"5.3-13", etsi + "5.3-13", "shall", "the defined support period is published clearly and accessibly", checkSupportPeriod},
	{"5.3-14", etsi + "5.3-14", "should", "a constrained device that cannot be updated is isolable and its hardware replaceable", checkConstrained},
	{"5.3-15", etsi + "5.3-15", "should", "a constrained device that cannot be updated has its rationale, replacement support and support period published", checkConstrained},
	{"5.3-16", etsi + "5.3-16", "shall", "the model designation is clearly recognisable", checkModel},
	{"CRA-I-2c", cra + "Annex I Part I (2)(c)", "essential requirement", "vulnerabilities addressed through security updates, automatic by default with opt-out, notification and postponement", checkCRAUpdates},
	{"CRA-I-2f", cra + "Annex I Part I (2)(f)", "essential requirement", "integrity of programs protected against unauthorised modification", checkCRAIntegrity},
	{"CRA-II-2", cra + "Annex I Part II (2)", "essential requirement", "vulnerabilities remediated without delay through security updates, separate from functionality updates where feasible", checkCRARemediate},
	{"CRA-II-7", cra + "Annex I Part II (7)", "essential requirement", "mechanisms to distribute updates securely, automatically for security updates", checkCRADistribution},
	{"CRA-II-8", cra + "Annex I Part II (8)", "essential requirement", "security updates disseminated without delay, free of charge, with advisory messages", checkCRADissemination},
	{"CRA-13-8", cra + "Article 13(8)", "obligation", "a support period of at least five years, or the expected use time", checkCRASupport},
	{"PSTI-2", psti + "paragraph 2", "requirement", "information on how to report security issues", checkContact},
	{"PSTI-3", psti + "paragraph 3", "requirement", "information on the defined support period (minimum security update period)", checkPSTISupport},
}

// verdict sets the status from a condition.
func (r *Result) verdict(ok bool) {
	r.Status = NotMet
	if ok {
		r.Status = Met
	}
}

func (r *Result) add(format string, args ...any) {
	r.Evidence = append(r.Evidence, fmt.Sprintf(format, args...))
}

func (r *Result) warn(format string, args ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
}

// --- ETSI EN 303 645 §5.3 ---

func checkUpdateable(f *Facts, r *Result) {
	ok, ev := updateable(f)
	r.add("%s", ev)
	rootfs := 0
	for _, rel := range f.Releases {
		if rel.PayloadType == "rootfs" {
			rootfs++
		} else {
			ok = false
			r.add("release %s has payload type %q, not a full image", rel.Version, rel.PayloadType)
		}
	}
	r.add("%d of %d releases are full rootfs images that replace all software in the A/B slot", rootfs, len(f.Releases))
	r.add("scope: software outside the A/B slots (bootloader, co-processor firmware) is not updated by uptrust and must be covered elsewhere")
	r.verdict(ok)
}

func checkMechanism(f *Facts, r *Result) {
	ok, ev := updateable(f)
	r.add("%s", ev)
	problems, chainEv := chain(f)
	r.Evidence = append(r.Evidence, chainEv...)
	r.Evidence = append(r.Evidence, problems...)
	if f.Agent.ABRollback {
		r.add("uptrust-agent installs into the inactive A/B slot, boots it on trial, health-checks it and commits or rolls back")
	} else {
		ok = false
		r.add("uptrust-agent (this build) has no A/B install with rollback")
	}
	r.verdict(ok && len(problems) == 0)
}

func checkSimple(f *Facts, r *Result) {
	ok, ev, warn := autoSecurity(f)
	r.Evidence = append(r.Evidence, ev...)
	r.Warnings = append(r.Warnings, warn...)
	if ok {
		r.add("security releases need no action from the owner")
	} else {
		r.add("security releases wait for the owner, and this agent build has no owner command to apply them")
	}
	r.verdict(ok)
}

func checkAutomatic(f *Facts, r *Result) {
	ok, ev, warn := autoSecurity(f)
	r.Evidence = append(r.Evidence, ev...)
	r.Warnings = append(r.Warnings, warn...)
	r.verdict(ok)
}

func checkPolling(f *Facts, r *Result) {
	a := f.Agent
	ok := a.ChecksAtStart && a.PollInterval > 0
	if a.ChecksAtStart {
		r.add("uptrust-agent run checks as soon as it starts")
	} else {
		r.add("uptrust-agent (this build) does not check when it starts")
	}
	if a.PollInterval > 0 {
		r.add("then every %s on average by default (poll_interval; each wait drawn from [%s, %s) so devices do not poll in step)",
			human(a.PollInterval), human(a.PollInterval/2), human(a.PollInterval*3/2))
	} else {
		r.add("no periodic check is configured")
	}
	r.add("the server signs timestamps valid for %s and snapshots for %s (uptrust.json lifetimes): a device that cannot refresh them in time stops trusting stale metadata",
		human(f.TimestampLifetime), human(f.SnapshotLifetime))
	if a.PollInterval*3/2 > f.TimestampLifetime && f.TimestampLifetime > 0 {
		r.warn("the longest default wait between checks (%s) exceeds the timestamp lifetime (%s)", human(a.PollInterval*3/2), human(f.TimestampLifetime))
	}
	r.verdict(ok)
}

func checkUserControl(f *Facts, r *Result) {
	auto, ev, warn := autoSecurity(f)
	r.Evidence = append(r.Evidence, ev...)
	r.Warnings = append(r.Warnings, warn...)
	missing, cev := ownerControls(f)
	r.Evidence = append(r.Evidence, cev...)
	if !auto {
		missing = append(missing, "automatic security updates are not on by default")
	}
	if f.Agent.AppliesPolicy {
		r.add("a kind the maker does not install automatically waits; the agent says, for a sample release, %q", f.Agent.PolicyReason)
	} else {
		missing = append(missing, "uptrust-agent (this build) does not apply the maker's policy")
	}
	r.Evidence = append(r.Evidence, missing...)
	r.verdict(len(missing) == 0)
}

func checkCrypto(f *Facts, r *Result) {
	ok := true
	var schemes []string
	weak := map[string]bool{}
	nkeys := 0
	for _, rp := range f.Repos {
		for _, k := range rp.Keys {
			nkeys++
			schemes = append(schemes, k.Scheme)
			if !strongScheme(k.Type, k.Scheme) {
				weak[fmt.Sprintf("%s key %s (%s/%s)", rp.Name, short(k.ID), k.Type, k.Scheme)] = true
			}
		}
	}
	if d := f.Delegation; d != nil {
		for _, k := range d.Keys {
			nkeys++
			schemes = append(schemes, k.Scheme)
			if !strongScheme(k.Type, k.Scheme) {
				weak[fmt.Sprintf("%s key %s (%s/%s)", d.Role, short(k.ID), k.Type, k.Scheme)] = true
			}
		}
	}
	r.add("signature schemes: %s over %d keys of both roots and the product delegation", strings.Join(uniq(schemes), ", "), nkeys)
	if len(weak) > 0 {
		ok = false
		r.add("keys with a scheme that is not Ed25519 or ECDSA P-256: %s", strings.Join(sortedKeys(weak), "; "))
	}
	for _, rp := range f.Repos {
		r.add("%s root v%d: threshold %d of %d keys (%s)", rp.Name, rp.RootVersion, rp.RootThreshold, len(rp.RootKeyIDs), shortAll(rp.RootKeyIDs))
		if rp.RootThreshold < 2 {
			ok = false
			r.add("%s root threshold %d: one stolen key can sign a new root; use at least 2", rp.Name, rp.RootThreshold)
		}
	}
	if p, ev := targetsHashed(f); len(p) > 0 {
		ok = false
		r.Evidence = append(r.Evidence, p...)
	} else {
		r.add("%s", ev)
	}
	if f.Dev {
		ok = false
		r.add("development project (uptrust init --dev): every key is 1-of-1 and stored unencrypted; re-initialise without --dev before provisioning devices")
	}
	switch {
	case f.OfflineKeysErr != "":
		ok = false
		r.add("cannot inspect the offline keys: %s", f.OfflineKeysErr)
	case len(f.OfflineKeys) == 0:
		r.add("no offline key files on this machine (kept offline, as recommended): their encryption cannot be checked here")
	default:
		var plain, broken []string
		for _, k := range f.OfflineKeys {
			switch {
			case k.Err != "":
				broken = append(broken, k.Name+": "+k.Err)
			case !k.Encrypted:
				plain = append(plain, k.Name)
			}
		}
		if len(plain) > 0 {
			ok = false
			r.add("offline keys stored unencrypted: %s", strings.Join(plain, ", "))
		}
		if len(broken) > 0 {
			ok = false
			r.add("offline key files that cannot be read: %s", strings.Join(broken, "; "))
		}
		if len(plain) == 0 && len(broken) == 0 {
			r.add("all %d offline key files in keys/offline are encrypted (scrypt, XChaCha20-Poly1305)", len(f.OfflineKeys))
		}
	}
	r.verdict(ok)
}

func checkTimely(f *Facts, r *Result) {
	ok, ev, warn := timely(f)
	r.Evidence = append(r.Evidence, ev...)
	r.Warnings = append(r.Warnings, warn...)
	r.verdict(ok)
}

func checkVerify(f *Facts, r *Result) {
	problems, ev := chain(f)
	r.Evidence = append(r.Evidence, ev...)
	hp, hev := targetsHashed(f)
	r.add("%s", hev)
	problems = append(problems, hp...)
	ok := true
	if f.Agent.TAP4 {
		r.add("uptrust-agent verifies both repositories' TUF metadata and streams each payload through its signed length and SHA-256 before arming the slot")
	} else {
		ok = false
		r.add("uptrust-agent (this build) does not verify updates against both repositories")
	}
	if f.Agent.AntiRollback {
		r.add("uptrust-agent refuses releases below the highest security version it installed")
	}
	r.Evidence = append(r.Evidence, problems...)
	r.verdict(ok && len(problems) == 0)
}

func checkTrust(f *Facts, r *Result) {
	ok, ev := updateable(f)
	if f.Agent.TAP4 {
		r.add("TUF with two repositories (TAP 4): a device trusts a target only when the release and the fleet repository agree on its length and hashes")
	} else {
		ok = false
		r.add("uptrust-agent (this build) does not require both repositories to agree")
	}
	r.add("%s", ev)
	for _, rp := range f.Repos {
		r.add("%s root v%d keys: %s (threshold %d), provisioned into devices as device/%s-root.json", rp.Name, rp.RootVersion, shortAll(rp.RootKeyIDs), rp.RootThreshold, rp.Name)
	}
	problems, _ := chain(f)
	r.Evidence = append(r.Evidence, problems...)
	expired, soon, first := expiry(f)
	if first != "" {
		r.add("%s", first)
	}
	r.Evidence = append(r.Evidence, expired...)
	r.Warnings = append(r.Warnings, soon...)
	r.verdict(ok && len(problems) == 0 && len(expired) == 0 && f.repo(deviceapi.RepoRelease) != nil && f.repo(deviceapi.RepoFleet) != nil)
}

func checkInform(f *Facts, r *Result) {
	missing, ev := advisories(f)
	r.Evidence = append(r.Evidence, ev...)
	ok := len(missing) == 0
	if f.Agent.ShowsReleaseInfo {
		r.add("uptrust-agent status lists each release that waits for the owner with its impact and advisories")
	} else {
		ok = false
		r.add("uptrust-agent (this build) does not show the owner release notes or advisories: they are signed and public in the release metadata, but not presented on the device")
	}
	if f.Agent.Notifies {
		r.add("the agent's notify hook receives a needs-consent event with the release's notes and advisories")
	}
	r.verdict(ok)
}

func checkDisrupt(f *Facts, r *Result) {
	var less []string
	for _, rel := range f.Releases {
		if rel.Impact.Functionality == release.ChangeLess {
			less = append(less, fmt.Sprintf("%s removes functionality: %s (marked adverse: needs the owner's consent)", rel.Version, rel.Impact.FunctionalityText))
		}
	}
	if len(less) == 0 {
		r.add("no release of %s removes functionality", f.Product)
	}
	r.Evidence = append(r.Evidence, less...)
	if !f.Agent.ConsentForAdverse {
		r.add("uptrust-agent (this build) installs releases with adverse impact without asking or notifying the owner")
		r.verdict(false)
		return
	}
	r.add("uptrust-agent holds such a release until the owner consents (uptrust-agent consent VERSION) and says, for a sample release, %q", f.Agent.ConsentReason)
	if f.Agent.Notifies {
		r.add("the agent's notify hook receives a needs-consent event with the impact")
	}
	r.verdict(true)
}

func checkSupportPeriod(f *Facts, r *Result) {
	r.verdict(supportPublished(f, r))
}

func checkConstrained(f *Facts, r *Result) {
	ok, ev := updateable(f)
	r.add("%s", ev)
	if ok {
		r.add("the product's software is updateable, so the provisions for constrained devices that cannot be updated do not apply")
		r.Status = NotApplicable
		return
	}
	r.add("the product cannot be updated through uptrust: show that it is isolable, its hardware replaceable, and publish why it has no updates")
	r.Status = NotMet
}

func checkModel(f *Facts, r *Result) {
	s := f.Support
	if s == nil || strings.TrimSpace(s.Model) == "" {
		if s == nil {
			r.add("no readable support declaration: %s", f.SupportErr)
		} else {
			r.add("the signed support declaration names no model designation")
		}
		r.verdict(false)
		return
	}
	r.add("model designation %q in the signed support declaration, with hardware revisions %s", s.Model, strings.Join(s.Hardware, ", "))
	r.add("scope: the label on the device or its physical interface is outside uptrust")
	if s.Model == s.Product {
		r.warn("the model designation equals the product name %q: set the designation printed on the device (product add --model)", s.Product)
	}
	r.verdict(true)
}

// --- EU Cyber Resilience Act ---

func checkCRAUpdates(f *Facts, r *Result) {
	ok, ev := updateable(f)
	r.add("%s", ev)
	auto, aev, warn := autoSecurity(f)
	r.Evidence = append(r.Evidence, aev...)
	r.Warnings = append(r.Warnings, warn...)
	if !auto {
		ok = false
		r.add("security updates are not automatic by default")
	}
	switch {
	case f.Agent.ShowsOffered && f.Agent.Notifies:
		r.add("notification: uptrust-agent status shows the offered release and why it is or is not installed; the notify hook tells the owner of releases that wait, installs and rollbacks")
	case f.Agent.ShowsOffered:
		r.add("notification: uptrust-agent status shows the offered release and why it is or is not installed")
	default:
		ok = false
		r.add("owners are not told about available updates")
	}
	missing, cev := ownerControls(f)
	r.Evidence = append(r.Evidence, cev...)
	r.Evidence = append(r.Evidence, missing...)
	r.verdict(ok && len(missing) == 0)
}

func checkCRAIntegrity(f *Facts, r *Result) {
	problems, ev := chain(f)
	r.Evidence = append(r.Evidence, ev...)
	hp, hev := targetsHashed(f)
	r.add("%s", hev)
	problems = append(problems, hp...)
	ok := f.Agent.TAP4 && f.Agent.ABRollback
	if ok {
		r.add("uptrust-agent writes nothing to the boot slot before both repositories agree on the target, and rolls back an image that fails")
	} else {
		r.add("uptrust-agent (this build) lacks TAP 4 verification or A/B rollback")
	}
	if f.Agent.AntiRollback {
		r.add("security versions only grow on a device: older vulnerable images are refused")
	}
	r.add("scope: integrity of user data and configuration on the device is outside uptrust")
	r.Evidence = append(r.Evidence, problems...)
	r.verdict(ok && len(problems) == 0)
}

func checkCRARemediate(f *Facts, r *Result) {
	ok, ev, warn := timely(f)
	r.Evidence = append(r.Evidence, ev...)
	r.Warnings = append(r.Warnings, warn...)
	adverse, plain := bundled(f)
	if len(adverse) > 0 {
		ok = false
		r.add("feature releases with adverse impact that carry security fixes without a security-only build (owners who decline keep the vulnerability): %s; publish one with release add --security-only-of VERSION",
			strings.Join(adverse, ", "))
	}
	if len(plain) > 0 {
		r.warn("feature releases that carry security fixes without a separate security-only build: %s", strings.Join(plain, ", "))
	}
	if len(adverse) == 0 && len(plain) == 0 {
		r.add("no feature release bundles security fixes without a security-only build")
	}
	r.verdict(ok)
}

func checkCRADistribution(f *Facts, r *Result) {
	problems, ev := chain(f)
	r.Evidence = append(r.Evidence, ev...)
	r.Evidence = append(r.Evidence, problems...)
	ok := len(problems) == 0
	if f.Agent.TAP4 {
		r.add("distribution through static signed TUF metadata (release and fleet repositories, TAP 4 agreement)")
	} else {
		ok = false
	}
	expired, soon, first := expiry(f)
	if first != "" {
		r.add("%s", first)
	}
	r.Evidence = append(r.Evidence, expired...)
	r.Warnings = append(r.Warnings, soon...)
	auto, aev, warn := autoSecurity(f)
	r.Evidence = append(r.Evidence, aev...)
	r.Warnings = append(r.Warnings, warn...)
	r.verdict(ok && auto && len(expired) == 0)
}

func checkCRADissemination(f *Facts, r *Result) {
	ok, ev, warn := timely(f)
	r.Evidence = append(r.Evidence, ev...)
	r.Warnings = append(r.Warnings, warn...)
	missing, aev := advisories(f)
	r.Evidence = append(r.Evidence, aev...)
	r.add("free of charge: metadata and payloads are served under /repo/ without an account, token or payment")
	r.verdict(ok && len(missing) == 0)
}

func checkCRASupport(f *Facts, r *Result) {
	s := f.Support
	if s == nil {
		r.add("no readable support declaration: %s", f.SupportErr)
		r.verdict(false)
		return
	}
	until, err := release.ParseDate(s.Until)
	if err != nil {
		r.add("support declaration has no valid end date: %v", err)
		r.verdict(false)
		return
	}
	start := f.ProductCreated
	end := until.AddDate(0, 0, 1)
	need := start.AddDate(supportYears, 0, 0)
	r.add("support from %s (product added, the earliest it can be placed on the market) until %s: %s",
		start.Format(time.DateOnly), s.Until, yearsMonths(start, end))
	if end.Before(need) {
		r.add("shorter than the %d years Article 13(8) requires unless the expected use time is shorter (then document it): extend with uptrust product support extend %s --until %s",
			supportYears, f.Product, need.AddDate(0, 0, -1).Format(time.DateOnly))
		r.verdict(false)
		return
	}
	r.add("at least %d years from the product's addition; measure again from the actual date of placing on the market", supportYears)
	r.verdict(true)
}

// --- UK PSTI ---

func checkContact(f *Facts, r *Result) {
	if f.Support == nil {
		r.add("no readable support declaration: %s", f.SupportErr)
		r.verdict(false)
		return
	}
	if c := strings.TrimSpace(f.Support.Contact); c != "" {
		r.add("security contact %q published in the signed support declaration", c)
		r.add("scope: the vulnerability disclosure policy itself is outside uptrust")
		r.verdict(true)
		return
	}
	r.add("the signed support declaration names no contact for reporting security issues (product add --contact)")
	r.verdict(false)
}

func checkPSTISupport(f *Facts, r *Result) {
	ok := supportPublished(f, r)
	if f.Support != nil && strings.TrimSpace(f.Support.Model) == "" {
		ok = false
		r.add("the declaration names no model designation for the period to apply to")
	} else if f.Support != nil {
		r.add("stated for model %q", f.Support.Model)
	}
	r.add("scope: publishing the period with the product's invitation to purchase (shop page, packaging) is outside uptrust")
	r.verdict(ok)
}
