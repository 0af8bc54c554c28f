package compliance

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/deviceapi"
	"github.com/uptrust/uptrust/internal/keys"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/rollout"
	"github.com/uptrust/uptrust/internal/store"
)

// agentCapabilities says what the uptrust-agent built from this source tree
// does that its exported code cannot be asked about. A project cannot tell,
// so it is written down here, next to where each capability lives;
// agent_test.go reads the agent's source and fails when one appears or
// disappears without this table following.
var agentCapabilities = Agent{
	ChecksAtStart:    true, // agent.Agent.Run: Check, then wait jitter(PollInterval)
	TAP4:             true, // agent/tuf.go: multirepo map, repos.agreed
	ABRollback:       true, // agent/state.go: PhaseArming … PhaseReverting
	AntiRollback:     true, // agent/decide.go: ClassRollbackSecurity
	ShowsOffered:     true, // agent/status.go: offered, decision, why
	ShowsSupportEnd:  true, // agent/status.go: SupportUntil and its warning
	ShowsReleaseInfo: true, // agent/status.go: waiting releases with impact and advisories
	Notifies:         true, // agent/notify.go: the notify hook's events
	// agent/notify.go has no event before the reboot into the new slot.
	WarnsBeforeReboot: false,
}

// probeRelease is the made-up release the agent's policy is asked about.
const probeRelease = "9.9.9"

// probeAgent returns the agent's capabilities: the default poll interval
// from agent.Config's own defaulting, and the owner's controls from what
// agent.Judge — the rules the agent applies to every offered release —
// decides about a made-up release at now.
func probeAgent(now time.Time) (Agent, error) {
	c := agent.Config{Server: "https://updates.invalid", Product: "p", Hardware: "h", DataDir: "d", ReleaseRoot: "r", FleetRoot: "f",
		Slot: agent.SlotConfig{Backend: "file", Dir: "s"}}
	if err := c.Validate(); err != nil {
		return Agent{}, fmt.Errorf("compliance: agent defaults: %w", err)
	}
	a := agentCapabilities
	a.PollInterval = time.Duration(c.PollInterval)

	pol := release.DefaultPolicy()
	none := release.Impact{DataCollection: release.ChangeNone, Functionality: release.ChangeNone}
	probe := func(kind release.Kind, impact release.Impact) *release.Manifest {
		return &release.Manifest{Product: "probe", Version: probeRelease, Hardware: []string{"probe"}, Kind: kind, Impact: impact,
			Payload: release.Payload{Type: "rootfs", Compression: "none"}, Published: now}
	}
	held := func(v agent.Verdict, hold string) (bool, string) {
		if v.Install || v.Hold != hold {
			return false, ""
		}
		return true, v.Reason
	}
	less := none
	less.Functionality, less.FunctionalityText = release.ChangeLess, "the scheduling function is removed"
	a.ConsentForAdverse, a.ConsentReason = held(agent.Judge(probe(release.KindFeature, less), pol, &agent.Owner{}, now), agent.HoldAdverse)
	securityOnly := release.Policy{AutoInstall: []release.Kind{release.KindSecurity}, MaxPostponeDays: pol.MaxPostponeDays}
	a.AppliesPolicy, a.PolicyReason = held(agent.Judge(probe(release.KindFix, none), securityOnly, &agent.Owner{}, now), agent.HoldKind)
	off := now
	a.OwnerOptOut, a.OptOutReason = held(agent.Judge(probe(release.KindSecurity, none), pol, &agent.Owner{AutoUpdatesOffSince: &off}, now), agent.HoldAutoOff)
	if until, since, err := agent.PostponeUntil(pol, &agent.Owner{}, now, 72*time.Hour); err == nil {
		o := &agent.Owner{PostponedUntil: &until, PostponedSince: &since}
		a.OwnerPostpone, a.PostponeReason = held(agent.Judge(probe(release.KindSecurity, none), pol, o, now), agent.HoldPostponed)
	}
	_, _, err := agent.PostponeUntil(pol, &agent.Owner{}, now, time.Duration(pol.MaxPostponeDays+1)*24*time.Hour)
	a.PostponeLimited = errors.Is(err, agent.ErrPostponeLimit)
	return a, nil
}

// Gather reads the facts about product from p. It only reads: no key is
// loaded, no passphrase asked for, nothing is signed. A missing product is
// an error wrapping store.ErrNotFound; a broken support declaration or a
// document whose signatures fail are facts, not errors.
func Gather(ctx context.Context, p *project.Project, product string) (*Facts, error) {
	prod, err := p.Store.Product(ctx, product)
	if err != nil {
		return nil, fmt.Errorf("compliance: product %q: %w", product, err)
	}
	life := p.Lifetimes()
	f := &Facts{Product: prod.Name, ProductCreated: prod.Created.UTC(), Now: p.Clock.Now().UTC(), Dev: p.Config.Dev,
		TimestampLifetime: life.Timestamp, SnapshotLifetime: life.Snapshot}
	if f.Agent, err = probeAgent(f.Now); err != nil {
		return nil, err
	}
	if f.Support, err = p.Support(ctx, product); err != nil {
		f.Support, f.SupportErr = nil, err.Error()
	}
	var productRole *metadata.Metadata[metadata.TargetsType]
	for _, name := range []string{deviceapi.RepoRelease, deviceapi.RepoFleet} {
		r, pr, err := gatherRepo(ctx, p.Store, name, product, f)
		if err != nil {
			return nil, err
		}
		f.Repos = append(f.Repos, r)
		if pr != nil {
			productRole = pr
		}
	}
	if productRole != nil {
		if tf, ok := productRole.Signed.Targets[release.SupportTargetName(product)]; ok {
			f.SupportTarget = target(tf)
		}
	}
	if f.Releases, err = gatherReleases(ctx, p.Store, product, productRole); err != nil {
		return nil, err
	}
	for i := range f.Releases {
		if _, err := p.Blobs.Stat(ctx, f.Releases[i].sha256); err != nil {
			f.Releases[i].BlobErr = err.Error()
		}
	}
	if err := gatherDeclarations(ctx, p.Store, f); err != nil {
		return nil, err
	}
	audited, err := p.CompletionsFromAudit(ctx, product)
	if err != nil {
		return nil, fmt.Errorf("compliance: %w", err)
	}
	f.Completions = mergeCompletions(f.Completions, audited)
	if f.Offers, err = gatherOffers(ctx, p.Store, product); err != nil {
		return nil, err
	}
	f.OfflineKeys, err = gatherKeyFiles(filepath.Join(p.Dir, "keys", "offline"))
	if err != nil {
		f.OfflineKeysErr = err.Error()
	}
	return f, nil
}

// gatherRepo reads a repository's root and the latest document of every
// top-level role, checks each against its delegator, and for the release
// repository the product's delegation and role. It returns the product role
// when there is one.
func gatherRepo(ctx context.Context, st store.Reader, name, product string, f *Facts) (Repo, *metadata.Metadata[metadata.TargetsType], error) {
	r := Repo{Name: name}
	root, err := repo.LoadRoot(ctx, st, name)
	if err != nil {
		return r, nil, fmt.Errorf("compliance: %w", err)
	}
	r.RootVersion = root.Signed.Version
	if rr := root.Signed.Roles[repo.RoleRoot]; rr != nil {
		r.RootThreshold, r.RootKeyIDs = rr.Threshold, append([]string(nil), rr.KeyIDs...)
	}
	r.Keys = keyList(root.Signed.Keys)
	r.Roles = append(r.Roles, role(name, repo.RoleRoot, root.Signed.Version, root.Signed.Expires, true, root.VerifyDelegate(repo.RoleRoot, root)))

	targets, err := repo.LoadTargets(ctx, st, name, repo.RoleTargets)
	if err != nil {
		return r, nil, fmt.Errorf("compliance: %w", err)
	}
	r.Roles = append(r.Roles, role(name, repo.RoleTargets, targets.Signed.Version, targets.Signed.Expires, name == deviceapi.RepoRelease,
		root.VerifyDelegate(repo.RoleTargets, targets)))

	var productRole *metadata.Metadata[metadata.TargetsType]
	if name == deviceapi.RepoRelease {
		pr := repo.ProductRole(product)
		if d := targets.Signed.Delegations; d != nil {
			for _, dr := range d.Roles {
				if dr.Name != pr {
					continue
				}
				del := &Delegation{Role: dr.Name, KeyIDs: append([]string(nil), dr.KeyIDs...), Threshold: dr.Threshold,
					Paths: append([]string(nil), dr.Paths...), Terminating: dr.Terminating}
				for _, id := range dr.KeyIDs {
					if k, ok := d.Keys[id]; ok {
						del.Keys = append(del.Keys, Key{ID: id, Type: k.Type, Scheme: k.Scheme})
					}
				}
				f.Delegation = del
			}
		}
		md, err := repo.LoadTargets(ctx, st, name, pr)
		switch {
		case err == nil:
			productRole = md
			r.Roles = append(r.Roles, role(name, pr, md.Signed.Version, md.Signed.Expires, true, targets.VerifyDelegate(pr, md)))
		case !errors.Is(err, store.ErrNotFound):
			return r, nil, fmt.Errorf("compliance: %w", err)
		}
	}

	snapDoc, err := st.LatestMetadata(ctx, name, repo.RoleSnapshot)
	if err != nil {
		return r, nil, fmt.Errorf("compliance: repo %s: snapshot: %w", name, err)
	}
	snap, err := metadata.Snapshot().FromBytes(snapDoc.Body)
	if err != nil {
		return r, nil, fmt.Errorf("compliance: repo %s: snapshot: %w", name, err)
	}
	r.Roles = append(r.Roles, role(name, repo.RoleSnapshot, snap.Signed.Version, snap.Signed.Expires, false, root.VerifyDelegate(repo.RoleSnapshot, snap)))

	tsDoc, err := st.LatestMetadata(ctx, name, repo.RoleTimestamp)
	if err != nil {
		return r, nil, fmt.Errorf("compliance: repo %s: timestamp: %w", name, err)
	}
	ts, err := metadata.Timestamp().FromBytes(tsDoc.Body)
	if err != nil {
		return r, nil, fmt.Errorf("compliance: repo %s: timestamp: %w", name, err)
	}
	r.Roles = append(r.Roles, role(name, repo.RoleTimestamp, ts.Signed.Version, ts.Signed.Expires, false, root.VerifyDelegate(repo.RoleTimestamp, ts)))
	return r, productRole, nil
}

func role(repoName, name string, version int64, expires time.Time, offline bool, verifyErr error) Role {
	r := Role{Repo: repoName, Name: name, Version: version, Expires: expires.UTC(), Offline: offline}
	if verifyErr != nil {
		r.VerifyErr = verifyErr.Error()
	}
	return r
}

func keyList(m map[string]*metadata.Key) []Key {
	var out []Key
	for id, k := range m {
		out = append(out, Key{ID: id, Type: k.Type, Scheme: k.Scheme})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func target(tf *metadata.TargetFiles) *Target {
	t := &Target{Path: tf.Path, Length: tf.Length, SHA256: hex.EncodeToString(tf.Hashes["sha256"])}
	for h := range tf.Hashes {
		t.Hashes = append(t.Hashes, h)
	}
	sort.Strings(t.Hashes)
	return t
}

// gatherReleases reads the product's releases with their manifests and
// compares each with its target in the product role.
func gatherReleases(ctx context.Context, st store.Reader, product string, productRole *metadata.Metadata[metadata.TargetsType]) ([]Release, error) {
	rels, err := st.Releases(ctx, product)
	if err != nil {
		return nil, fmt.Errorf("compliance: releases of %s: %w", product, err)
	}
	var out []Release
	for _, sr := range rels {
		m, err := release.DecodeManifest(sr.Manifest)
		if err != nil {
			return nil, fmt.Errorf("compliance: manifest of %s %s: %w", product, sr.Version, err)
		}
		r := Release{Version: sr.Version, sha256: sr.SHA256, Kind: m.Kind, SecurityVersion: m.SecurityVersion, Published: m.Published.UTC(), Notes: m.Notes,
			Advisories: m.Advisories, Impact: m.Impact, SecurityOnly: m.SecurityOnly, SecurityOnlyOf: m.SecurityOnlyOf, PayloadType: m.Payload.Type}
		if r.Published.IsZero() {
			r.Published = sr.Created.UTC()
		}
		if productRole != nil {
			if tf, ok := productRole.Signed.Targets[sr.Target]; ok {
				r.Target = target(tf)
				if r.Target.Length != sr.Length || r.Target.SHA256 != sr.SHA256 {
					r.TargetErr = fmt.Sprintf("signed target %s lists %d bytes, sha256 %.12s…; the stored release has %d bytes, sha256 %.12s…",
						sr.Target, r.Target.Length, r.Target.SHA256, sr.Length, sr.SHA256)
				}
			}
		}
		out = append(out, r)
	}
	sortReleases(out)
	return out, nil
}

// gatherDeclarations reads what the manufacturer recorded for the
// report: rollout completions, the market declaration and the standing
// attestations (the newest per item).
func gatherDeclarations(ctx context.Context, st store.Reader, f *Facts) error {
	cs, err := st.RolloutCompletions(ctx, f.Product)
	if err != nil {
		return fmt.Errorf("compliance: %w", err)
	}
	for _, c := range cs {
		f.Completions = append(f.Completions, Completion{Version: c.Version, Reached: c.Reached.UTC()})
	}
	switch m, err := st.Market(ctx, f.Product); {
	case err == nil:
		f.Market = &Market{PlacedOn: m.PlacedOn.UTC(), ExpectedUseMonths: m.ExpectedUseMonths, Justification: m.Justification, Recorded: m.Recorded.UTC()}
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("compliance: %w", err)
	}
	as, err := st.Attestations(ctx, f.Product)
	if err != nil {
		return fmt.Errorf("compliance: %w", err)
	}
	// Ordered by item, then time: the last standing one per item wins.
	for _, a := range as {
		if !a.Withdrawn.IsZero() {
			continue
		}
		att := Attestation{Item: a.Item, URL: a.URL, Note: a.Note, By: a.By, Time: a.Time.UTC()}
		if n := len(f.Attestations); n > 0 && f.Attestations[n-1].Item == a.Item {
			f.Attestations[n-1] = att
		} else {
			f.Attestations = append(f.Attestations, att)
		}
	}
	return nil
}

// mergeCompletions adds the completions recovered from the audit log for
// releases the table has none for, oldest first.
func mergeCompletions(recorded []Completion, audited []store.RolloutCompletion) []Completion {
	have := map[string]bool{}
	for _, c := range recorded {
		have[c.Version] = true
	}
	out := recorded
	for _, c := range audited {
		if !have[c.Version] {
			out = append(out, Completion{Version: c.Version, Reached: c.Reached.UTC(), FromAudit: true})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Reached.Before(out[j].Reached) })
	return out
}

// gatherOffers reads the product's targets in the fleet repository with
// their rollout rules: what devices are offered now.
func gatherOffers(ctx context.Context, st store.Reader, product string) ([]Offer, error) {
	md, err := repo.LoadTargets(ctx, st, deviceapi.RepoFleet, repo.RoleTargets)
	if err != nil {
		return nil, fmt.Errorf("compliance: %w", err)
	}
	var out []Offer
	for path, tf := range md.Signed.Targets {
		version, ok := strings.CutPrefix(path, product+"/")
		if !ok || release.ValidVersion(version) != nil {
			// Not a release: a delta target offered with it.
			continue
		}
		o := Offer{Version: version}
		if tf.Custom != nil {
			rule, err := rollout.RuleFromCustom(*tf.Custom)
			if err != nil {
				return nil, fmt.Errorf("compliance: fleet target %s: rollout rule: %w", path, err)
			}
			if rule != nil {
				o.Percent, o.Halted, o.Start = rule.Percent, rule.Halted, rule.Start.UTC()
			}
		}
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return release.CompareVersions(out[i].Version, out[j].Version) < 0 })
	return out, nil
}

// gatherKeyFiles lists the key files in dir and whether each is encrypted.
// A missing directory means no offline keys on this machine.
func gatherKeyFiles(dir string) ([]KeyFile, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("compliance: offline keys: %w", err)
	}
	var out []KeyFile
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".key") {
			continue
		}
		kf := KeyFile{Name: e.Name()}
		enc, err := keys.IsEncrypted(filepath.Join(dir, e.Name()))
		if err != nil {
			kf.Err = err.Error()
		}
		kf.Encrypted = enc
		out = append(out, kf)
	}
	return out, nil
}
