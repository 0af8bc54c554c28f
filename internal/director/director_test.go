package director

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"github.com/uptrust/uptrust/internal/keys"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/repo"
	"github.com/uptrust/uptrust/internal/rollout"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// fleet is a fleet root with its online keys.
type fleet struct {
	root []byte
	keys repo.OnlineKeys
	// rel is the release repository's targets of thermostat (releases).
	rel *metadata.TargetsType
}

func newFleet(t testing.TB) fleet {
	t.Helper()
	gen := func() *keys.Key {
		k, err := keys.Generate()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	rootKey := gen()
	f := fleet{keys: repo.OnlineKeys{Targets: gen(), Snapshot: gen(), Timestamp: gen()}, rel: releases(t)}
	root := metadata.Root(t0.AddDate(1, 0, 0))
	for role, k := range map[string]*keys.Key{metadata.ROOT: rootKey, metadata.TARGETS: f.keys.Targets.(*keys.Key),
		metadata.SNAPSHOT: f.keys.Snapshot.(*keys.Key), metadata.TIMESTAMP: f.keys.Timestamp.(*keys.Key)} {
		if err := root.Signed.AddKey(k.TUFKey(), role); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := root.Sign(rootKey); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.root, err = root.ToBytes(false); err != nil {
		t.Fatal(err)
	}
	return f
}

// shared is a shared fleet targets role offering thermostat 1.2.0 at 10 %
// (as an anonymous rollout publishes it), another product's offer and a
// target outside any product.
func shared(t testing.TB) *metadata.TargetsType {
	t.Helper()
	rule, err := rollout.MarshalCustom(rollout.Rule{Percent: 10, Start: t0})
	if err != nil {
		t.Fatal(err)
	}
	md := metadata.Targets(t0.AddDate(0, 0, 7))
	for path, custom := range map[string][]byte{"thermostat/1.2.0": rule, "camera/3.0.0": rule, "notice.txt": nil} {
		md.Signed.Targets[path] = repo.NewTarget(repo.TargetInfo{Path: path, Length: 1, SHA256: make([]byte, 32), Custom: custom})
	}
	return &md.Signed
}

func sha(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// releases is the release repository's targets role of thermostat: 1.0.0,
// 1.2.0 with a delta from 1.1.0, its security-only build 1.1.1-sec, an
// unrelated security-only build of 1.0.0 and the support declaration.
func releases(t testing.TB) *metadata.TargetsType {
	t.Helper()
	md := metadata.Targets(t0.AddDate(1, 0, 0))
	add := func(m *release.Manifest) {
		m.Product, m.Hardware, m.Payload = "thermostat", []string{"rev-a"}, release.Payload{Type: "rootfs", Compression: release.CompressionNone}
		m.Impact = release.Impact{DataCollection: release.ChangeNone, Functionality: release.ChangeNone}
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
		custom, _ := json.Marshal(release.Custom{Uptrust: m})
		path := release.TargetName(m.Product, m.Version)
		md.Signed.Targets[path] = repo.NewTarget(repo.TargetInfo{Path: path, Length: int64(len(path)), SHA256: sha(path), Custom: custom})
	}
	delta := release.DeltaTargetName("thermostat", "1.2.0", "1.1.0")
	add(&release.Manifest{Version: "1.0.0", Kind: release.KindFeature})
	add(&release.Manifest{Version: "1.2.0", Kind: release.KindFeature, Deltas: []release.Delta{{From: "1.1.0", Target: delta,
		Length: int64(len(delta)), SHA256: hex.EncodeToString(sha(delta)), SourceLength: 1, SourceSHA256: hex.EncodeToString(sha("src"))}}})
	add(&release.Manifest{Version: "1.1.1-sec", Kind: release.KindSecurity, SecurityOnly: true, SecurityOnlyOf: "1.2.0"})
	add(&release.Manifest{Version: "1.0.1-sec", Kind: release.KindSecurity, SecurityOnly: true, SecurityOnlyOf: "1.0.0"})
	md.Signed.Targets[delta] = repo.NewTarget(repo.TargetInfo{Path: delta, Length: int64(len(delta)), SHA256: sha(delta)})
	sup := release.SupportTargetName("thermostat")
	md.Signed.Targets[sup] = repo.NewTarget(repo.TargetInfo{Path: sup, Length: 3, SHA256: sha(sup)})
	return &md.Signed
}

func assignment() *rollout.Assignment {
	return &rollout.Assignment{RolloutID: "r-1", Version: "1.2.0", Wave: 2, Start: t0, Window: "Mon-Fri 02:00-04:00 Europe/Berlin"}
}

func input(f fleet, version int64, a *rollout.Assignment, sh *metadata.TargetsType) Input {
	return Input{Keys: f.keys, Device: "d-1", Product: "thermostat", Version: version, Shared: sh, Release: f.rel, Assignment: a,
		Expires: Expiry{Targets: t0.AddDate(0, 0, 7), Snapshot: t0.AddDate(0, 0, 7), Timestamp: t0.AddDate(0, 0, 1)}}
}

// verify runs go-tuf's client checks (signatures with the fleet root,
// versions, lengths, hashes, expiry at `at`) over v after the trusted
// state in tm (a fresh one when nil) and returns it.
func verify(t *testing.T, f fleet, tm *trustedmetadata.TrustedMetadata, v View, at time.Time) (*trustedmetadata.TrustedMetadata, error) {
	t.Helper()
	if tm == nil {
		var err error
		if tm, err = trustedmetadata.New(f.root); err != nil {
			t.Fatal(err)
		}
	}
	tm.RefTime = at
	if _, err := tm.UpdateTimestamp(v.Timestamp); err != nil {
		return tm, err
	}
	if _, err := tm.UpdateSnapshot(v.Snapshot, false); err != nil {
		return tm, err
	}
	if _, err := tm.UpdateDelegatedTargets(v.Targets, metadata.TARGETS, metadata.ROOT); err != nil {
		return tm, err
	}
	return tm, nil
}

func TestBuildAssigned(t *testing.T) {
	f := newFleet(t)
	sh := shared(t)
	v, err := Build(input(f, 42, assignment(), sh))
	if err != nil {
		t.Fatal(err)
	}
	tm, err := verify(t, f, nil, v, t0)
	if err != nil {
		t.Fatalf("go-tuf refuses the view: %v", err)
	}
	got := tm.Targets[metadata.TARGETS].Signed
	if got.Version != 42 || tm.Snapshot.Signed.Version != 42 || tm.Timestamp.Signed.Version != 42 {
		t.Errorf("versions %d/%d/%d, want 42", got.Version, tm.Snapshot.Signed.Version, tm.Timestamp.Signed.Version)
	}
	rel := releases(t)
	want := []string{"thermostat/1.2.0", "thermostat/1.1.1-sec", release.DeltaTargetName("thermostat", "1.2.0", "1.1.0"), "notice.txt"}
	if len(got.Targets) != len(want) {
		t.Errorf("targets %v, want %v", keysOf(got.Targets), want)
	}
	for _, p := range want {
		tf, ok := got.Targets[p]
		if !ok {
			t.Errorf("target %s missing", p)
			continue
		}
		src := rel.Targets[p]
		if p == "notice.txt" {
			src = sh.Targets[p]
		}
		if tf.Length != src.Length || !tf.Hashes.Equal(src.Hashes) {
			t.Errorf("target %s: length or hashes differ from the release repository's", p)
		}
	}
	var c rollout.Custom
	if err := json.Unmarshal(*got.Targets["thermostat/1.1.1-sec"].Custom, &c); err != nil {
		t.Fatal(err)
	}
	if c.Uptrust.Rollout == nil || c.Uptrust.Rollout.Percent != 100 || c.Uptrust.Rollout.Halted || !c.Uptrust.Rollout.Start.Equal(t0) {
		t.Errorf("rule %+v, want percent 100 from t0", c.Uptrust.Rollout)
	}
	if c.Uptrust.Managed == nil || *c.Uptrust.Managed != (rollout.ManagedCustom{Rollout: "r-1", Wave: 2, Window: "Mon-Fri 02:00-04:00 Europe/Berlin"}) {
		t.Errorf("managed %+v", c.Uptrust.Managed)
	}
	if got.Targets[release.DeltaTargetName("thermostat", "1.2.0", "1.1.0")].Custom != nil {
		t.Error("the delta got custom metadata")
	}
	// The shared view is not changed.
	if r, _ := rollout.RuleFromCustom(*sh.Targets["thermostat/1.2.0"].Custom); r.Percent != 10 {
		t.Errorf("shared rule changed to %+v", r)
	}
	// Deterministic: the same input gives the same bytes.
	v2, err := Build(input(f, 42, assignment(), sh))
	if err != nil || string(v2.Timestamp) != string(v.Timestamp) || string(v2.Targets) != string(v.Targets) {
		t.Errorf("a second build differs (err %v)", err)
	}
}

// A release the shared view does not offer (a managed rollout publishes
// nothing there) is listed from the release repository all the same.
func TestBuildWithoutSharedOffer(t *testing.T) {
	f := newFleet(t)
	sh := shared(t)
	delete(sh.Targets, "thermostat/1.2.0")
	v, err := Build(input(f, 3, assignment(), sh))
	if err != nil {
		t.Fatal(err)
	}
	tm, err := verify(t, f, nil, v, t0)
	if err != nil {
		t.Fatal(err)
	}
	tf := tm.Targets[metadata.TARGETS].Signed.Targets["thermostat/1.2.0"]
	if tf == nil || tf.Length != f.rel.Targets["thermostat/1.2.0"].Length || !tf.Hashes.Equal(f.rel.Targets["thermostat/1.2.0"].Hashes) {
		t.Errorf("thermostat/1.2.0 in the view: %+v, want the release repository's target", tf)
	}
}

func keysOf(m map[string]*metadata.TargetFiles) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestBuildUnassigned(t *testing.T) {
	f := newFleet(t)
	v, err := Build(input(f, 7, nil, shared(t)))
	if err != nil {
		t.Fatal(err)
	}
	tm, err := verify(t, f, nil, v, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got := tm.Targets[metadata.TARGETS].Signed.Targets; len(got) != 1 || got["notice.txt"] == nil {
		t.Errorf("targets %v for an unassigned device, want only the one outside any product", keysOf(got))
	}
}

// A later view with a higher version is accepted after an earlier one; an
// older one is refused (rollback), and an expired one too.
func TestBuildVersionsAndExpiry(t *testing.T) {
	f := newFleet(t)
	sh := shared(t)
	v1, _ := Build(input(f, 10, nil, sh))
	v2, _ := Build(input(f, 11, assignment(), sh))
	tm, err := trustedmetadata.New(f.root)
	if err != nil {
		t.Fatal(err)
	}
	tm.RefTime = t0
	if _, err := tm.UpdateTimestamp(v1.Timestamp); err != nil {
		t.Fatal(err)
	}
	if _, err := tm.UpdateTimestamp(v2.Timestamp); err != nil {
		t.Fatalf("a higher version is refused: %v", err)
	}
	if _, err := tm.UpdateTimestamp(v1.Timestamp); !errors.As(err, new(*metadata.ErrBadVersionNumber)) {
		t.Errorf("an older view: %v, want a bad version number", err)
	}
	if _, err := verify(t, f, nil, v2, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := verify(t, f, nil, v1, t0.AddDate(0, 0, 2)); !errors.As(err, new(*metadata.ErrExpiredMetadata)) {
		t.Errorf("an expired view: %v, want expired", err)
	}
	// A view signed with another fleet's keys is refused.
	other := newFleet(t)
	v3, _ := Build(input(other, 12, nil, sh))
	if _, err := verify(t, f, nil, v3, t0); !errors.As(err, new(*metadata.ErrUnsignedMetadata)) {
		t.Errorf("a view of another fleet: %v, want unsigned", err)
	}
}

func TestBuildBadInput(t *testing.T) {
	f := newFleet(t)
	sh := shared(t)
	for name, in := range map[string]Input{
		"no keys":     func() Input { i := input(f, 1, nil, sh); i.Keys.Snapshot = nil; return i }(),
		"no shared":   input(f, 1, nil, nil),
		"version 0":   input(f, 0, nil, sh),
		"no product":  func() Input { i := input(f, 1, nil, sh); i.Product = ""; return i }(),
		"no expiry":   func() Input { i := input(f, 1, nil, sh); i.Expires.Timestamp = time.Time{}; return i }(),
		"not offered": input(f, 1, &rollout.Assignment{RolloutID: "r", Version: "9.9.9", Wave: 1}, sh),
		"no release repository targets": func() Input {
			i := input(f, 1, &rollout.Assignment{RolloutID: "r", Version: "1.2.0", Wave: 1}, sh)
			i.Release = nil
			return i
		}(),
		"no wave": input(f, 1, &rollout.Assignment{RolloutID: "r", Version: "1.2.0"}, sh),
	} {
		if _, err := Build(in); err == nil {
			t.Errorf("%s: no error", name)
		} else if (name == "not offered" || name == "no release repository targets") && !errors.Is(err, ErrNotOffered) {
			t.Errorf("%s: %v, want ErrNotOffered", name, err)
		}
	}
}

func TestVersionMonotone(t *testing.T) {
	base := Version(5, 3, t0)
	for name, v := range map[string]int64{
		"generation": Version(6, 3, t0), "shared": Version(5, 4, t0), "device": Version(5, 3, t0.Add(time.Millisecond)),
	} {
		if v <= base {
			t.Errorf("a change of the %s gives %d, not above %d", name, v, base)
		}
	}
}

func BenchmarkBuild(b *testing.B) {
	f := newFleet(b)
	sh := shared(b)
	in := input(f, 42, assignment(), sh)
	for b.Loop() {
		if _, err := Build(in); err != nil {
			b.Fatal(err)
		}
	}
}
