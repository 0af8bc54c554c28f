package compliance

import (
	"fmt"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
)

// rule is one provision and the check that judges it. check must set the
// result's Status and should give at least one line of evidence. attest
// says what the manufacturer must attest when the verdict also rests on a
// fact outside uptrust (the check then sets Result.outside); it is empty
// for provisions judged from the project alone.
type rule struct {
	id, source string
	force      Force
	condition  string
	title      string
	attest     string
	check      func(*Facts, *Result)
}

const (
	etsi = "ETSI EN 303 645 V2.1.1 provision "
	cra  = "EU CRA (Regulation (EU) 2024/2847) "
	psti = "UK PSTI (SI 2023/1007) Schedule 1 "
)

// Conditions of conditional provisions.
const (
	condNotConstrained = "where the device is not constrained"
	condUpdatable      = "where updates are possible"
	condAutoOrNotify   = "where automatic updates or update notifications exist"
	condNetwork        = "where updates are delivered over a network"
	condConstrained    = "for a constrained device that cannot be updated"
)

// expiryWarning is how close to expiry an offline role draws a warning:
// offline roles are re-signed by hand, so a month's notice.
const expiryWarning = 30 * 24 * time.Hour

// supportYears is the floor of the support period in CRA Article 13(8).
const supportYears = 5

// availableYears is how long CRA Article 13(9) keeps each security update
// available at least.
const availableYears = 10

// rules in report order. Titles paraphrase the provisions as
// ../shared/regulations.md summarises them.
var rules = []rule{
	{"5.3-1", etsi + "5.3-1", Should, "", "every software component of the device can be updated securely", "", checkUpdateable},
	{"5.3-2", etsi + "5.3-2", ConditionalShall, condNotConstrained, "the device has an update mechanism for installing updates securely", "", checkMechanism},
	{"5.3-3", etsi + "5.3-3", ConditionalShall, condUpdatable, "applying an update is simple for the user", "", checkSimple},
	{"5.3-4", etsi + "5.3-4", Should, "", "updates are applied automatically", "", checkAutomatic},
	{"5.3-5", etsi + "5.3-5", Should, "", "the device checks for security updates after setup and periodically afterwards", "", checkPolling},
	{"5.3-6", etsi + "5.3-6", ConditionalShould, condAutoOrNotify, "automatic updates and notifications are on by default, and the user can turn them on, off and postpone them", "", checkUserControl},
	{"5.3-7", etsi + "5.3-7", Shall, "", "best-practice cryptography protects the update mechanism", "", checkCrypto},
	{"5.3-8", etsi + "5.3-8", Shall, "", "security updates are timely", "", checkTimely},
	{"5.3-9", etsi + "5.3-9", Should, "", "the device verifies that updates are authentic and intact", "", checkVerify},
	{"5.3-10", etsi + "5.3-10", ConditionalShall, condNetwork, "the device verifies each update through a trust relationship", "", checkTrust},
	{"5.3-11", etsi + "5.3-11", Should, "", "the manufacturer tells the user, recognisably and apparently, that a security update is needed and what risk it mitigates", "", checkInform},
	{"5.3-12", etsi + "5.3-12", Should, "", "the device tells the user when installing an update will interrupt its basic functioning (downtime, reboot)",
		"the device tells the user before installing an update interrupts its basic functioning (for example from the agent's reboot_command or the device's interface)", checkDisrupt},
	{"5.3-13", etsi + "5.3-13", Shall, "", "the manufacturer publishes the defined support period, accessibly and clearly, for users", "", checkSupportPeriod},
	{"5.3-14", etsi + "5.3-14", ConditionalShould, condConstrained, "the manufacturer publishes why the device cannot be updated, the period and method of hardware replacement support, and a defined support period", "", checkConstrained},
	{"5.3-15", etsi + "5.3-15", ConditionalShould, condConstrained, "the product can be isolated and its hardware replaced", "", checkConstrained},
	{"5.3-16", etsi + "5.3-16", Shall, "", "the model designation is clearly recognisable, on a label or through a physical interface",
		"the model designation is on a label on the device or shown through a physical interface", checkModel},
	{"CRA-I-2c", cra + "Annex I Part I (2)(c)", Shall, "", "vulnerabilities can be addressed by security updates, automatic by default with a clear opt-out, notification of available updates and temporary postponement", "", checkCRAUpdates},
	{"CRA-I-2f", cra + "Annex I Part I (2)(f)", Shall, "", "the integrity of programs and configuration is protected against unauthorised change, and corruption is reported", "", checkCRAIntegrity},
	{"CRA-II-2", cra + "Annex I Part II (2)", Shall, "", "vulnerabilities are remediated without delay, including by security updates, provided separately from functionality updates where technically feasible", "", checkCRARemediate},
	{"CRA-II-4", cra + "Annex I Part II (4)", Shall, "", "once a security update is available, information about the fixed vulnerabilities is published (description, affected products, impact, severity, remediation)", "", checkCRAFixInfo},
	{"CRA-II-5", cra + "Annex I Part II (5)", Shall, "", "a coordinated vulnerability disclosure policy is in place and enforced",
		"a coordinated vulnerability disclosure policy is published and enforced", checkCRADisclosure},
	{"CRA-II-6", cra + "Annex I Part II (6)", Shall, "", "there is a contact address for reporting vulnerabilities",
		"the contact address for reporting vulnerabilities is published and answered", checkCRAContact},
	{"CRA-II-7", cra + "Annex I Part II (7)", Shall, "", "updates are distributed securely, and automatically for security updates where applicable", "", checkCRADistribution},
	{"CRA-II-8", cra + "Annex I Part II (8)", Shall, "", "available security updates are disseminated without delay and free of charge, with advisory messages telling users what to do",
		"security updates are free of charge for users (no paid plan, account or subscription stands between a device and its updates)", checkCRADissemination},
	{"CRA-13-8", cra + "Article 13(8)", Shall, "", "the support period reflects the time the product is expected to be in use: at least five years, shorter only when the expected use is shorter", "", checkCRASupport},
	{"CRA-13-9", cra + "Article 13(9)", Shall, "", "each security update stays available for at least 10 years after it was issued, or for the rest of the support period if longer", "", checkCRAAvailable},
	{"CRA-13-19", cra + "Article 13(19)", Shall, "", "the end date of the support period, at least month and year, is shown clearly at the time of purchase",
		"the end of the support period (at least month and year) is shown clearly where the product is offered for purchase", checkCRAEndShown},
	{"PSTI-2", psti + "paragraph 2", Shall, "", "a point of contact for reporting security issues is published, with when the reporter will get an acknowledgement and status updates",
		"the point of contact is published together with when reporters get an acknowledgement and status updates", checkContact},
	{"PSTI-3", psti + "paragraph 3", Shall, "", "the defined support period is published as a minimum length with an end date, clearly and unprompted, and with any invitation to purchase",
		"the support period is published with its end date, clearly, free, without asking for personal data, and with every invitation to purchase the product", checkPSTISupport},
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
	if ok && len(f.Releases) == 0 {
		r.add("no release of %s is published: what its images replace cannot be judged yet", f.Product)
		r.Status = NotYet
		return
	}
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
	st, ev, warn := timely(f)
	r.Evidence = append(r.Evidence, ev...)
	r.Warnings = append(r.Warnings, warn...)
	r.Status = st
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
	if !f.Agent.ShowsReleaseInfo {
		r.add("uptrust-agent (this build) does not show the owner release notes or advisories: they are signed and public in the release metadata, but not presented on the device")
		r.verdict(false)
		return
	}
	r.add("uptrust-agent status lists each release that waits for the owner with its impact and advisories")
	if f.Agent.Notifies {
		r.add("the agent's notify hook receives a needs-consent event with the release's notes and advisories")
	}
	if len(f.securityReleases()) == 0 {
		r.add("no security release of %s is published: what its advisories tell the user cannot be judged yet", f.Product)
		r.Status = NotYet
		return
	}
	missing, ev := advisories(f)
	r.Evidence = append(r.Evidence, ev...)
	r.verdict(len(missing) == 0)
}

func checkDisrupt(f *Facts, r *Result) {
	if f.Agent.WarnsBeforeReboot {
		r.add("uptrust-agent tells the user before it reboots into the new slot")
		r.verdict(true)
		return
	}
	r.add("uptrust-agent (this build) installs into the inactive slot while the device keeps running, then runs reboot_command without telling the user first: its notify hook's events (needs-consent, installed, rolled-back) come before consent or after the reboot")
	if f.Agent.ConsentForAdverse {
		r.add("releases with adverse impact wait for the owner's consent (uptrust-agent consent VERSION); the reboot itself is not announced")
	}
	r.outside = true
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
	if s.Model == s.Product {
		r.warn("the model designation equals the product name %q: set the designation printed on the device (product add --model)", s.Product)
	}
	r.outside = true
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
	if f.Agent.Notifies && f.Agent.ABRollback {
		r.add("corruption is reported: an image that fails its hash or health check is refused or rolled back, shown by uptrust-agent status, sent to the notify hook (rolled-back) and counted in the anonymous reports (failed, rolled_back)")
	} else {
		ok = false
		r.add("uptrust-agent (this build) does not report a corrupted or failed image to the owner")
	}
	r.add("scope: integrity of user data and configuration on the device is outside uptrust")
	r.Evidence = append(r.Evidence, problems...)
	r.verdict(ok && len(problems) == 0)
}

func checkCRARemediate(f *Facts, r *Result) {
	st, ev, warn := timely(f)
	r.Evidence = append(r.Evidence, ev...)
	r.Warnings = append(r.Warnings, warn...)
	adverse, plain := bundled(f)
	if len(adverse) > 0 {
		st = NotMet
		r.add("feature releases with adverse impact that carry security fixes without a security-only build (owners who decline keep the vulnerability): %s; publish one with release add --security-only-of VERSION",
			strings.Join(adverse, ", "))
	}
	if len(plain) > 0 {
		r.warn("feature releases that carry security fixes without a separate security-only build: %s", strings.Join(plain, ", "))
	}
	if len(adverse) == 0 && len(plain) == 0 && len(f.Releases) > 0 {
		r.add("no feature release bundles security fixes without a security-only build")
	}
	r.Status = st
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
	st, ev, warn := timely(f)
	r.Evidence = append(r.Evidence, ev...)
	r.Warnings = append(r.Warnings, warn...)
	missing, aev := advisories(f)
	r.Evidence = append(r.Evidence, aev...)
	if len(missing) > 0 {
		st = NotMet
	}
	r.add("uptrust serves metadata and payloads under /repo/ without an account, token or payment")
	r.Status = st
	r.outside = st == Met
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
	m := f.Market
	if m == nil {
		r.add("support until %s, but no placing on the market is declared: the period is counted from that day; declare it with uptrust compliance market %s --placed-on YYYY-MM-DD --expected-use 7y [--justification TEXT]",
			s.Until, f.Product)
		r.verdict(false)
		return
	}
	end := until.AddDate(0, 0, 1)
	placed := m.PlacedOn.Format(time.DateOnly)
	r.add("placed on the market %s and expected in use for %s, as the manufacturer declared on %s", placed, yearsMonths(m.PlacedOn, m.PlacedOn.AddDate(0, m.ExpectedUseMonths, 0)), when(m.Recorded))
	r.add("support from %s until %s: %s", placed, s.Until, yearsMonths(m.PlacedOn, end))
	floor := m.PlacedOn.AddDate(supportYears, 0, 0)
	use := m.PlacedOn.AddDate(0, m.ExpectedUseMonths, 0)
	extend := func(to time.Time) string {
		return fmt.Sprintf("uptrust product support extend %s --until %s", f.Product, to.AddDate(0, 0, -1).Format(time.DateOnly))
	}
	switch {
	case end.Before(use):
		r.add("shorter than the expected time in use: the period must reflect it (five years is a floor, not a target); extend with %s", extend(use))
		r.verdict(false)
	case !end.Before(floor):
		r.add("at least %d years and at least the expected time in use", supportYears)
		r.verdict(true)
	case strings.TrimSpace(m.Justification) == "":
		r.add("shorter than %d years: allowed only when the product is expected in use for less, with a justification; none is declared (uptrust compliance market %s ... --justification TEXT), or extend with %s",
			supportYears, f.Product, extend(floor))
		r.verdict(false)
	default:
		r.add("shorter than %d years because the expected time in use is: %s", supportYears, m.Justification)
		r.verdict(true)
	}
	if end.Before(f.Now) {
		r.warn("support ended on %s", s.Until)
	}
}

// --- UK PSTI ---

func checkContact(f *Facts, r *Result) {
	if !contact(f, r) {
		return
	}
	r.outside = true
	r.verdict(true)
}

// contact checks that the support declaration names a security contact.
func contact(f *Facts, r *Result) bool {
	if f.Support == nil {
		r.add("no readable support declaration: %s", f.SupportErr)
		r.verdict(false)
		return false
	}
	c := strings.TrimSpace(f.Support.Contact)
	if c == "" {
		r.add("the signed support declaration names no contact for reporting security issues (product add --contact)")
		r.verdict(false)
		return false
	}
	r.add("security contact %q published in the signed support declaration", c)
	return true
}

func checkCRAContact(f *Facts, r *Result) {
	if !contact(f, r) {
		return
	}
	r.outside = true
	r.verdict(true)
}

func checkCRADisclosure(f *Facts, r *Result) {
	r.add("uptrust does not hold the manufacturer's vulnerability disclosure policy or see how it is enforced")
	r.outside = true
	r.verdict(true)
}

func checkCRAFixInfo(f *Facts, r *Result) {
	if len(f.securityReleases()) == 0 {
		r.add("no security release of %s is published: there is no fixed vulnerability to inform about yet", f.Product)
		r.Status = NotYet
		return
	}
	missing, ev := advisories(f)
	r.Evidence = append(r.Evidence, ev...)
	if len(missing) == 0 {
		r.add("advisories are signed inside each release's manifest and published with it in the release repository; devices show them (uptrust-agent status)")
		r.add("scope: an advisory carries an id and a summary; severity, affected products and remediation guidance belong in the summary or the page its id names")
	}
	r.verdict(len(missing) == 0)
}

func checkCRAAvailable(f *Facts, r *Result) {
	secs := f.securityReleases()
	if len(secs) == 0 {
		r.add("no security release of %s is published: there is nothing to keep available yet", f.Product)
		r.Status = NotYet
		return
	}
	var until time.Time
	if f.Support != nil {
		if d, err := release.ParseDate(f.Support.Until); err == nil {
			until = d
		}
	}
	ok := true
	for _, s := range secs {
		keep := s.Published.AddDate(availableYears, 0, 0)
		if until.After(keep) {
			keep = until
		}
		switch {
		case s.BlobErr != "":
			ok = false
			r.add("security release %s: its payload is missing from the blob store: %s", s.Version, s.BlobErr)
		case s.Target == nil:
			ok = false
			r.add("security release %s is not listed in %s: devices cannot fetch it", s.Version, repo.ProductRole(f.Product))
		default:
			r.add("security release %s: payload in the blob store and listed in %s, to be kept available until at least %s",
				s.Version, repo.ProductRole(f.Product), keep.Format(time.DateOnly))
		}
	}
	r.add("uptrust never removes a payload from the blob store or a release from the release repository: no retention applies to them (uptrust.json retention bounds report_counts and audit only), and every published release stays served at /repo/release/targets/")
	r.add("scope: keeping the server and its blob directory running for that long is outside uptrust")
	r.verdict(ok)
}

func checkCRAEndShown(f *Facts, r *Result) {
	if f.Support == nil {
		r.add("no readable support declaration: %s", f.SupportErr)
		r.verdict(false)
		return
	}
	until, err := release.ParseDate(f.Support.Until)
	if err != nil {
		r.add("support declaration has no valid end date: %v", err)
		r.verdict(false)
		return
	}
	r.add("end of support declared as %s (%s) in the signed support declaration", f.Support.Until, until.Format("January 2006"))
	r.outside = true
	r.verdict(true)
}

func checkPSTISupport(f *Facts, r *Result) {
	ok := supportPublished(f, r)
	if f.Support != nil && strings.TrimSpace(f.Support.Model) == "" {
		ok = false
		r.add("the declaration names no model designation for the period to apply to")
	} else if f.Support != nil {
		r.add("stated for model %q", f.Support.Model)
	}
	r.outside = ok
	r.verdict(ok)
}
