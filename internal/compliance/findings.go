package compliance

import (
	"fmt"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
)

// Findings shared by several rules. Each reads Facts only.

// updateable reports whether the product is delegated in the release
// repository so that releases can be signed for it.
func updateable(f *Facts) (bool, string) {
	d := f.Delegation
	if d == nil {
		return false, fmt.Sprintf("the release repository's targets role delegates no role %s: no release of %s can be signed", repo.ProductRole(f.Product), f.Product)
	}
	want := f.Product + "/*"
	for _, p := range d.Paths {
		if p == want {
			return true, fmt.Sprintf("%s is delegated by the release repository's targets role (paths %s, %d-of-%d key %s, terminating %v)",
				d.Role, strings.Join(d.Paths, ","), d.Threshold, len(d.KeyIDs), shortAll(d.KeyIDs), d.Terminating)
		}
	}
	return false, fmt.Sprintf("%s is delegated for paths %s, not %s", d.Role, strings.Join(d.Paths, ","), want)
}

// chain verifies every stored role against its delegator and says so per
// repository; problems lists the roles that fail.
func chain(f *Facts) (problems, evidence []string) {
	for _, r := range f.Repos {
		var parts []string
		for _, role := range r.Roles {
			parts = append(parts, fmt.Sprintf("%s v%d", role.Name, role.Version))
			if role.VerifyErr != "" {
				problems = append(problems, fmt.Sprintf("%s repository: %s v%d does not verify against its delegator: %s", r.Name, role.Name, role.Version, role.VerifyErr))
			}
		}
		evidence = append(evidence, fmt.Sprintf("%s repository: %s verified against their delegators' keys and thresholds", r.Name, strings.Join(parts, ", ")))
	}
	if len(f.Repos) == 0 {
		problems = append(problems, "no repository metadata found")
	}
	return problems, evidence
}

// expiry finds expired roles and offline roles close to expiry, and names
// the role that expires first.
func expiry(f *Facts) (expired, soon []string, first string) {
	var earliest *Role
	roles := f.roles()
	for i := range roles {
		r := &roles[i]
		switch {
		case !r.Expires.After(f.Now):
			how := "the server re-signs it while uptrust serve runs"
			if r.Offline {
				how = "re-sign it with the offline keys"
			}
			expired = append(expired, fmt.Sprintf("%s %s v%d expired %s (%s): devices refuse to update until it is re-signed; %s",
				r.Repo, r.Name, r.Version, when(r.Expires), relative(f.Now, r.Expires), how))
		case r.Offline && r.Expires.Sub(f.Now) < expiryWarning:
			soon = append(soon, fmt.Sprintf("offline %s %s v%d expires %s (%s): re-sign it with the offline keys before then",
				r.Repo, r.Name, r.Version, when(r.Expires), relative(f.Now, r.Expires)))
		}
		if earliest == nil || r.Expires.Before(earliest.Expires) {
			earliest = r
		}
	}
	if earliest != nil {
		first = fmt.Sprintf("first expiry: %s %s v%d at %s (%s)", earliest.Repo, earliest.Name, earliest.Version, when(earliest.Expires), relative(f.Now, earliest.Expires))
	}
	return expired, soon, first
}

// targetsHashed checks that every release is signed in the product role with
// its SHA-256 and length as stored.
func targetsHashed(f *Facts) (problems []string, evidence string) {
	n := 0
	for _, r := range f.Releases {
		switch {
		case r.Target == nil:
			problems = append(problems, fmt.Sprintf("release %s is not listed in %s", r.Version, repo.ProductRole(f.Product)))
		case r.TargetErr != "":
			problems = append(problems, fmt.Sprintf("release %s: %s", r.Version, r.TargetErr))
		case r.Target.SHA256 == "":
			problems = append(problems, fmt.Sprintf("release %s: signed target lists no SHA-256 (hashes: %s)", r.Version, strings.Join(r.Target.Hashes, ",")))
		default:
			n++
		}
	}
	return problems, fmt.Sprintf("%d of %d releases signed in %s with length and SHA-256 matching the stored payload", n, len(f.Releases), repo.ProductRole(f.Product))
}

// autoSecurity says whether security releases reach devices without the
// owner's action, as the agent behaves.
func autoSecurity(f *Facts) (ok bool, evidence, warnings []string) {
	pol := f.policy()
	declared := pol.Auto(release.KindSecurity)
	evidence = append(evidence, fmt.Sprintf("maker's policy in the signed support declaration: auto-install %s; owners may postpone up to %d days",
		kinds(pol.AutoInstall), pol.MaxPostponeDays))
	if f.Agent.AppliesPolicy {
		evidence = append(evidence, "uptrust-agent applies this policy to every release its rollout admits")
		return declared, evidence, nil
	}
	evidence = append(evidence, "uptrust-agent (this build) installs every release its rollout admits without the owner's action; it does not read the maker's policy")
	if !declared {
		warnings = append(warnings, "the declared policy makes security releases wait for the owner, but this agent build installs them automatically")
	}
	return true, evidence, warnings
}

// ownerControls checks that the owner can switch automatic updates off and
// postpone them.
func ownerControls(f *Facts) (missing, evidence []string) {
	a, pol := f.Agent, f.policy()
	if a.OwnerOptOut {
		evidence = append(evidence, fmt.Sprintf("opt-out: uptrust-agent policy auto-updates off; the agent then holds even security releases and says, for a sample release, %q", a.OptOutReason))
	} else {
		missing = append(missing, "no opt-out: uptrust-agent (this build) has no owner setting to switch automatic updates off")
	}
	switch {
	case !a.OwnerPostpone:
		missing = append(missing, "no postponement: uptrust-agent (this build) has no owner command to postpone updates")
	case pol.MaxPostponeDays <= 0:
		missing = append(missing, fmt.Sprintf("no postponement: the maker's policy allows 0 days (uptrust product policy %s --max-postpone-days N)", f.Product))
	default:
		limit := ""
		if a.PostponeLimited {
			limit = ", longer ones are refused"
		}
		evidence = append(evidence, fmt.Sprintf("postpone: uptrust-agent postpone DURATION, up to %d days under the maker's policy%s; the agent then says, for a sample release, %q",
			pol.MaxPostponeDays, limit, a.PostponeReason))
	}
	return missing, evidence
}

func kinds(ks []release.Kind) string {
	if len(ks) == 0 {
		return "nothing"
	}
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// TimelyBound is the yardstick the report measures security deliveries
// against: from a security release's publication, with its advisories, to
// its rollout reaching every device. Neither EN 303 645 nor the CRA sets a
// number; the report says so next to every use of it.
const TimelyBound = 30 * 24 * time.Hour

// delivery is how one security release reached, or has not yet reached,
// every device.
type delivery struct {
	rel *Release
	// reached is when a release delivering its fixes (itself or a newer
	// one with at least its security version) first reached every device;
	// zero when none has. via names that release.
	reached time.Time
	via     string
	// fromAudit: reached was recovered from the audit log.
	fromAudit bool
}

// deliveries measures every security release against the recorded
// rollout completions.
func deliveries(f *Facts) []delivery {
	var out []delivery
	for _, sec := range f.securityReleases() {
		d := delivery{rel: sec}
		for _, c := range f.Completions {
			r := f.release(c.Version)
			if r == nil || release.CompareVersions(r.Version, sec.Version) < 0 || r.SecurityVersion < sec.SecurityVersion {
				continue
			}
			if d.reached.IsZero() || c.Reached.Before(d.reached) {
				d.reached, d.via, d.fromAudit = c.Reached, c.Version, c.FromAudit
			}
		}
		out = append(out, d)
	}
	return out
}

// timely judges how fast security releases reached every device: not met
// when one took, or is taking, longer than TimelyBound; met when at least
// one reached every device and none is late; not yet demonstrable when
// there is no security release or none has reached every device yet.
func timely(f *Facts) (st Status, evidence, warnings []string) {
	ds := deliveries(f)
	if len(ds) == 0 {
		return NotYet, []string{fmt.Sprintf("no security release of %s is published: there is no delivery to measure yet", f.Product)}, nil
	}
	late, done := 0, 0
	for _, d := range ds {
		head := fmt.Sprintf("security release %s (security version %d), published with its advisories %s", d.rel.Version, d.rel.SecurityVersion, when(d.rel.Published))
		if !d.reached.IsZero() {
			took := max(d.reached.Sub(d.rel.Published), 0)
			via := ""
			if d.via != d.rel.Version {
				via = " as " + d.via
			}
			if d.fromAudit {
				via += " (recovered from the audit log)"
			}
			line := fmt.Sprintf("%s: reached 100%% of devices%s at %s, %s after publication", head, via, when(d.reached), span(took))
			if took > TimelyBound {
				late++
				line += fmt.Sprintf(": later than %s", human(TimelyBound))
			} else {
				done++
			}
			evidence = append(evidence, line)
			continue
		}
		elapsed := max(f.Now.Sub(d.rel.Published), 0)
		line := fmt.Sprintf("%s: not yet offered to every device, %s after publication; %s", head, span(elapsed), offerState(f, d.rel))
		if elapsed > TimelyBound {
			late++
			evidence = append(evidence, line+fmt.Sprintf(": later than %s (uptrust rollout set-percent %s 100, or resume a halted rollout)", human(TimelyBound), f.Product))
			continue
		}
		evidence = append(evidence, line)
		warnings = append(warnings, fmt.Sprintf("security release %s has not reached every device yet (%s after publication)", d.rel.Version, span(elapsed)))
	}
	evidence = append(evidence, fmt.Sprintf("measured from each security release's publication, which carries its signed advisories, to the first time its rollout reached 100%% of devices, against uptrust's yardstick of %s: neither EN 303 645 nor the CRA sets a number; how fast a vulnerability became a release is outside uptrust",
		human(TimelyBound)))
	switch {
	case late > 0:
		return NotMet, evidence, warnings
	case done > 0:
		return Met, evidence, warnings
	}
	return NotYet, evidence, append(warnings[:0:0], fmt.Sprintf("no rollout of a security release of %s has reached every device yet", f.Product))
}

// offerState says how the fleet repository offers sec's fixes now.
func offerState(f *Facts, sec *Release) string {
	var best *Offer
	halted := false
	for _, o := range f.covering(sec) {
		if o.Halted {
			halted = true
			continue
		}
		if o.Percent > 0 && (best == nil || o.Percent > best.Percent) {
			o := o
			best = &o
		}
	}
	switch {
	case best != nil:
		return fmt.Sprintf("offered as %s to %d%% of devices since %s", best.Version, best.Percent, when(best.Start))
	case halted:
		return "its rollout is halted: " + offers(f)
	case len(f.Offers) == 0:
		return "it is not offered: the fleet repository offers no release of " + f.Product
	}
	return "it is not offered to any device: " + offers(f)
}

func offers(f *Facts) string {
	var s []string
	for _, o := range f.Offers {
		state := fmt.Sprintf("%s at %d%%", o.Version, o.Percent)
		if o.Halted {
			state += " (halted)"
		}
		s = append(s, state)
	}
	if len(s) == 0 {
		return "the fleet repository offers nothing"
	}
	return "the fleet repository offers " + strings.Join(s, ", ")
}

// advisories lists the security releases that tell the owner nothing about
// what they fix.
func advisories(f *Facts) (missing, evidence []string) {
	for _, r := range f.securityReleases() {
		switch {
		case len(r.Advisories) > 0:
			ids := make([]string, len(r.Advisories))
			for i, a := range r.Advisories {
				ids[i] = a.ID
			}
			evidence = append(evidence, fmt.Sprintf("security release %s carries signed advisories %s", r.Version, strings.Join(ids, ", ")))
		case strings.TrimSpace(r.Notes) != "":
			evidence = append(evidence, fmt.Sprintf("security release %s carries signed release notes (%d characters), no advisory ids", r.Version, len(r.Notes)))
		default:
			missing = append(missing, r.Version)
		}
	}
	if len(missing) > 0 {
		evidence = append(evidence, fmt.Sprintf("security releases without advisories or notes: %s (publish with --advisory ID:SUMMARY or --notes FILE)", strings.Join(missing, ", ")))
	}
	return missing, evidence
}

// supportPublished checks the signed support declaration.
func supportPublished(f *Facts, r *Result) bool {
	s := f.Support
	if s == nil {
		r.add("no readable support declaration: %s", f.SupportErr)
		return false
	}
	until, err := release.ParseDate(s.Until)
	if err != nil {
		r.add("support declaration has no valid end date: %v", err)
		return false
	}
	signer := "an unknown key"
	if d := f.Delegation; d != nil {
		signer = fmt.Sprintf("%s key %s", d.Role, shortAll(d.KeyIDs))
	}
	t := f.SupportTarget
	if t == nil {
		r.add("support period until %s is not listed as a target of %s", s.Until, repo.ProductRole(f.Product))
		return false
	}
	for _, role := range f.roles() {
		if role.Name == repo.ProductRole(f.Product) && role.VerifyErr != "" {
			r.add("%s v%d carrying the declaration does not verify: %s", role.Name, role.Version, role.VerifyErr)
			return false
		}
	}
	r.add("support period published: until %s, signed by %s (target %s, sha256 %s, issued %s)", s.Until, signer, t.Path, short(t.SHA256), when(s.Issued))
	r.add("served publicly at %s", deviceapi.TargetPath(deviceapi.ReleaseBase, t.Path, t.SHA256))
	r.add("it can be extended, never shortened: server and agent refuse a shorter declaration")
	if f.Agent.ShowsSupportEnd {
		r.add("uptrust-agent status shows the owner the support end and warns when it has passed")
	}
	if end := until.AddDate(0, 0, 1); !end.After(f.Now) {
		r.warn("support ended on %s", s.Until)
	}
	return true
}

// bundled lists feature releases that raise the security version without a
// security-only build next to them: adverse ones leave owners who decline
// them without the fix.
func bundled(f *Facts) (adverse, plain []string) {
	var maxSV uint64
	for i, rel := range f.Releases {
		if i > 0 && rel.Kind == release.KindFeature && !rel.SecurityOnly && rel.SecurityVersion > maxSV && !hasCompanion(f, rel.Version) {
			if rel.Impact.Adverse() {
				adverse = append(adverse, rel.Version)
			} else {
				plain = append(plain, rel.Version)
			}
		}
		maxSV = max(maxSV, rel.SecurityVersion)
	}
	return adverse, plain
}

func hasCompanion(f *Facts, version string) bool {
	for _, r := range f.Releases {
		if r.SecurityOnly && r.SecurityOnlyOf == version {
			return true
		}
	}
	return false
}
